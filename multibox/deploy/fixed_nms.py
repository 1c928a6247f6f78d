"""Greedy NMS with fixed tensor shapes, written for export: a TorchScript-able torch version and an ONNX one.

Both take candidates already sorted by score and answer which of them survive, so the graph around them
has static shapes. The torch version runs anywhere TorchScript does (no torchvision op needed to load the
file); the ONNX version is a custom op that the exporter turns into the standard ``NonMaxSuppression``.
"""

from __future__ import annotations

import torch


def pairwise_suppression(boxes: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``S[b, i, j]``: candidate ``i`` is earlier than ``j`` and overlaps it with IoU > ``iou_threshold``.

    IoU > t is tested as ``inter * (1 + t) > t * (area_i + area_j)``, i.e. ``inter > t * union`` without a
    division (a zero union never suppresses); in-place steps keep the ``(B, P, P)`` float buffers few.

    Args:
        boxes: ``(B, P, 4)`` corner boxes in descending score order.

    Returns:
        ``(B, P, P)`` bool.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)  # (B, P) each
    inter = torch.minimum(x2.unsqueeze(2), x2.unsqueeze(1))
    inter.sub_(torch.maximum(x1.unsqueeze(2), x1.unsqueeze(1))).clamp_(min=0.0)
    height = torch.minimum(y2.unsqueeze(2), y2.unsqueeze(1))
    height.sub_(torch.maximum(y1.unsqueeze(2), y1.unsqueeze(1))).clamp_(min=0.0)
    inter.mul_(height)  # (B, P, P)
    area = (x2 - x1) * (y2 - y1)  # (B, P)
    area_sum = (area.unsqueeze(2) + area.unsqueeze(1)).mul_(iou_threshold)  # t * (area_i + area_j)
    overlap = inter.mul_(1.0 + iou_threshold) > area_sum
    num = boxes.shape[1]
    order = torch.arange(num, device=boxes.device)
    return overlap & (order.unsqueeze(1) < order.unsqueeze(0))


def greedy_nms_sorted(
    boxes: torch.Tensor, active: torch.Tensor, groups: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Which score-sorted candidates survive greedy NMS within their group.

    Iterates ``keep = active & not suppressed by an earlier kept candidate`` from ``keep = active``: after
    ``t`` rounds the first ``t`` candidates are settled, and the fixed point is the greedy answer, reached in
    as many rounds as the longest suppression chain (a handful in practice).

    Args:
        boxes: ``(B, P, 4)`` corners, descending score; active: ``(B, P)`` bool, candidates that take part;
        groups: ``(B, P)`` int, only candidates of one group suppress each other.

    Returns:
        ``(B, P)`` bool.
    """
    suppress = pairwise_suppression(boxes, iou_threshold)
    suppress = suppress & (groups.unsqueeze(2) == groups.unsqueeze(1))
    suppress = suppress & active.unsqueeze(2) & active.unsqueeze(1)
    keep = active
    for _ in range(boxes.shape[1] + 1):
        suppressed = (suppress & keep.unsqueeze(2)).any(dim=1)  # (B, P)
        new_keep = active & ~suppressed
        if bool(torch.equal(new_keep, keep)):
            break
        keep = new_keep
    return keep


@torch.library.custom_op("multibox::non_max_suppression", mutates_args=())
def onnx_non_max_suppression(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, score_threshold: float
) -> torch.Tensor:
    """ONNX ``NonMaxSuppression`` (corner boxes, no output limit) in torch: ``(K, 3)`` rows
    ``[batch, class, box]`` of the survivors.

    Args:
        boxes: ``(B, P, 4)``; scores: ``(B, G, P)``, only entries > ``score_threshold`` take part.
    """
    batch, groups, num = scores.shape
    order = scores.argsort(dim=2, descending=True, stable=True)  # (B, G, P)
    sorted_scores = torch.gather(scores, 2, order)
    sorted_boxes = torch.gather(
        boxes.unsqueeze(1).expand(-1, groups, -1, -1), 2, order.unsqueeze(-1).expand(-1, -1, -1, 4)
    )
    flat_boxes = sorted_boxes.reshape(batch * groups, num, 4)
    active = (sorted_scores > score_threshold).reshape(batch * groups, num)
    keep = greedy_nms_sorted(flat_boxes, active, torch.zeros_like(active, dtype=torch.long), iou_threshold)
    keep = keep.view(batch, groups, num)
    b, g, position = keep.nonzero(as_tuple=True)
    # ONNX lists survivors class by class in descending score order, which is what nonzero gives here.
    return torch.stack([b, g, order[b, g, position]], dim=1)


@onnx_non_max_suppression.register_fake
def _(boxes, scores, iou_threshold, score_threshold):
    count = torch.library.get_ctx().new_dynamic_size()
    return boxes.new_empty((count, 3), dtype=torch.long)


def onnx_translation():
    """``{op: onnxscript function}`` for ``torch.onnx.export(custom_translation_table=...)``."""
    from onnxscript import opset18 as op

    def non_max_suppression(boxes, scores, iou_threshold: float, score_threshold: float):
        return op.NonMaxSuppression(
            boxes,
            scores,
            op.Constant(value_ints=[2**31 - 1]),
            op.Constant(value_floats=[iou_threshold]),
            op.Constant(value_floats=[score_threshold]),
            center_point_box=0,
        )

    return {torch.ops.multibox.non_max_suppression.default: non_max_suppression}
