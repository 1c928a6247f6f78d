"""Box helpers shared by the MultiBox operators: pairwise IoU and the SSD box encoding."""

from __future__ import annotations

from collections.abc import Sequence

import torch

VARIANCES = (0.1, 0.1, 0.2, 0.2)
"""The box-offset variances of SSD (and of MXNet's operators' defaults): x, y, w, h."""


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of corner boxes ``(..., 4)`` -> ``(...)``: plain differences (no +1), negative if inverted."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor) -> torch.Tensor:
    """Pairwise IoU of corner boxes, computed as MXNet's ``CalculateOverlap``.

    Args:
        boxes1: ``(..., P, 4)``; boxes2: ``(..., Q, 4)``; leading dimensions broadcast.

    Returns:
        ``(..., P, Q)`` with ``inter / (area1 + area2 - inter)`` and 0 where the union is not positive.
    """
    b1 = boxes1.unsqueeze(-2)  # (..., P, 1, 4)
    b2 = boxes2.unsqueeze(-3)  # (..., 1, Q, 4)
    inter_w = (torch.minimum(b1[..., 2], b2[..., 2]) - torch.maximum(b1[..., 0], b2[..., 0])).clamp_min(0)
    inter_h = (torch.minimum(b1[..., 3], b2[..., 3]) - torch.maximum(b1[..., 1], b2[..., 1])).clamp_min(0)
    inter = inter_w * inter_h
    union = box_area(b1) + box_area(b2) - inter
    return torch.where(union > 0, inter / torch.where(union > 0, union, torch.ones_like(union)), 0.0)


def coordinate_planes(boxes: torch.Tensor) -> torch.Tensor:
    """``(..., 4)`` rows as contiguous coordinate planes ``(4, ...)`` (the same as
    ``boxes.movedim(-1, 0).contiguous()``).

    Copied as ``(R, 2, 2) -> (2, 2, R)``: on CPU torch copies that permutation several times faster than the
    plain ``(R, 4) -> (4, R)`` transpose.
    """
    lead = boxes.shape[:-1]
    return boxes.reshape(-1, 2, 2).permute(1, 2, 0).contiguous().view(4, *lead)


def _variances(variances: Sequence[float]) -> tuple[float, float, float, float]:
    if len(variances) != 4 or any(not float(v) > 0 for v in variances):
        raise ValueError(f"variances must be 4 positive numbers, got {tuple(variances)}")
    return tuple(float(v) for v in variances)  # type: ignore[return-value]


def encode_boxes(
    anchors: torch.Tensor,
    boxes: torch.Tensor,
    variances: Sequence[float] = VARIANCES,
    eps: float = 1e-12,
) -> torch.Tensor:
    """SSD regression targets of ``boxes`` relative to ``anchors`` (both ``(..., 4)`` corners).

    ``t = ((gcx - acx) / aw / vx, (gcy - acy) / ah / vy, ln(gw / aw) / vw, ln(gh / ah) / vh)``.
    Widths/heights are floored at ``eps`` inside the log so degenerate boxes give finite targets.

    Returns:
        ``(..., 4)`` offsets ``(dx, dy, dw, dh)``.
    """
    vx, vy, vw, vh = _variances(variances)
    aw = anchors[..., 2] - anchors[..., 0]
    ah = anchors[..., 3] - anchors[..., 1]
    ax = (anchors[..., 0] + anchors[..., 2]) * 0.5
    ay = (anchors[..., 1] + anchors[..., 3]) * 0.5
    gw = boxes[..., 2] - boxes[..., 0]
    gh = boxes[..., 3] - boxes[..., 1]
    gx = (boxes[..., 0] + boxes[..., 2]) * 0.5
    gy = (boxes[..., 1] + boxes[..., 3]) * 0.5
    return torch.stack(
        [
            (gx - ax) / aw / vx,
            (gy - ay) / ah / vy,
            torch.log(gw.clamp_min(eps) / aw) / vw,
            torch.log(gh.clamp_min(eps) / ah) / vh,
        ],
        dim=-1,
    )


def decode_boxes(
    anchors: torch.Tensor,
    offsets: torch.Tensor,
    variances: Sequence[float] = VARIANCES,
    *,
    clip: bool = False,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Inverse of :func:`encode_boxes`, with MXNet's ``MultiBoxDetection`` operation order.

    Args:
        anchors: ``(..., 4)`` corner anchors; offsets: ``(..., 4)`` ``(dx, dy, dw, dh)``; shapes broadcast.
        clip: clamp every corner to ``[0, 1]`` (the detection operator's ``clip``).
        out: optional ``(..., 4)`` tensor (any strides, e.g. columns of a wider row) to write the boxes into;
            not differentiable (without ``out`` the result is, when an input requires grad).

    Returns:
        ``(..., 4)`` corner boxes (``out`` when given).
    """
    vx, vy, vw, vh = _variances(variances)
    ax1, ay1, ax2, ay2 = coordinate_planes(anchors)
    dx, dy, dw, dh = coordinate_planes(offsets)  # contiguous planes: one copy, then fast passes
    aw, ah = ax2 - ax1, ay2 - ay1
    ax, ay = (ax1 + ax2) / 2, (ay1 + ay2) / 2
    cx = dx * vx * aw + ax
    cy = dy * vy * ah + ay
    half_w = torch.exp(dw * vw) * aw / 2
    half_h = torch.exp(dh * vh) * ah / 2
    corners = (
        (torch.sub, cx, half_w),
        (torch.sub, cy, half_h),
        (torch.add, cx, half_w),
        (torch.add, cy, half_h),
    )
    if out is None:
        if torch.is_grad_enabled() and (anchors.requires_grad or offsets.requires_grad):
            boxes = torch.stack([op(a, b) for op, a, b in corners], dim=-1)  # differentiable
            return boxes.clamp(0.0, 1.0) if clip else boxes
        out = cx.new_empty((*cx.shape, 4))
    # each corner written straight to its column: no stacking copy, no strided clamp
    for column, (op, a, b) in enumerate(corners):
        if clip:
            torch.clamp(op(a, b), 0.0, 1.0, out=out[..., column])
        else:
            op(a, b, out=out[..., column])
    return out
