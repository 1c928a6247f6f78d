"""MultiBoxPrior: the default boxes (anchors) of one feature map, in MXNet's exact order."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multibox.ops._checks import check_positive_floats


def multibox_prior(
    feature_shape: Sequence[int],
    sizes: Sequence[float] = (1.0,),
    ratios: Sequence[float] = (1.0,),
    steps: Sequence[float] = (-1.0, -1.0),
    offsets: Sequence[float] = (0.5, 0.5),
    clip: bool = False,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Anchors of an ``(H, W)`` feature map as MXNet's ``contrib.MultiBoxPrior``.

    Per location the ``A = len(sizes) + len(ratios) - 1`` anchors are: every size with the first ratio,
    then the first size with every further ratio. Widths are corrected by ``H / W`` on non-square maps.
    ``steps`` and ``offsets`` are in ``(y, x)`` order; a non-positive step means ``1 / H`` resp. ``1 / W``.

    Returns:
        ``(H * W * A, 4)`` corner boxes ``[x1, y1, x2, y2]`` normalised to the image, row-major over
        ``(y, x, anchor)``. Computed in float32 (as the original) and cast to ``dtype``.
    """
    if len(feature_shape) != 2:
        raise ValueError(f"feature_shape must be (H, W), got {tuple(feature_shape)}")
    height, width = (int(v) for v in feature_shape)
    if height <= 0 or width <= 0:
        raise ValueError(f"feature_shape must be positive, got {(height, width)}")
    sizes = check_positive_floats("sizes", sizes)
    ratios = check_positive_floats("ratios", ratios)
    if len(steps) != 2 or len(offsets) != 2:
        raise ValueError(f"steps and offsets must be (y, x) pairs, got {tuple(steps)} and {tuple(offsets)}")
    if any(not 0.0 <= float(o) <= 1.0 for o in offsets):
        raise ValueError(f"offsets must lie in [0, 1], got {tuple(offsets)}")
    if (steps[0] > 0) != (steps[1] > 0):
        raise ValueError(f"steps must be both positive or both automatic (<= 0), got {tuple(steps)}")

    f32 = torch.float32
    one = torch.ones((), dtype=f32, device=device)
    if steps[0] > 0:
        step_y = torch.tensor(float(steps[0]), dtype=f32, device=device)
        step_x = torch.tensor(float(steps[1]), dtype=f32, device=device)
    else:  # float32 1/H and 1/W, as the CPU kernel computes them
        step_y, step_x = one / height, one / width
    off_y = torch.tensor(float(offsets[0]), dtype=f32, device=device)
    off_x = torch.tensor(float(offsets[1]), dtype=f32, device=device)
    center_y = (torch.arange(height, dtype=f32, device=device) + off_y) * step_y  # (H,)
    center_x = (torch.arange(width, dtype=f32, device=device) + off_x) * step_x  # (W,)

    size_t = torch.tensor(sizes, dtype=f32, device=device)
    ratio_t = torch.tensor(ratios, dtype=f32, device=device)
    # Per-anchor (size, sqrt(ratio)) pairs in the original's order.
    anchor_sizes = torch.cat([size_t, size_t[:1].expand(len(ratios) - 1)])  # (A,)
    anchor_roots = torch.cat([torch.sqrt(ratio_t[:1]).expand(len(sizes)), torch.sqrt(ratio_t[1:])])  # (A,)
    # Same operation order as the C++ kernel: size * H / W * sqrt(r) / 2 and size / sqrt(r) / 2.
    half_w = anchor_sizes * float(height) / float(width) * anchor_roots / 2  # (A,)
    half_h = anchor_sizes / anchor_roots / 2  # (A,)

    cy = center_y.view(height, 1, 1)
    cx = center_x.view(1, width, 1)
    boxes = torch.stack(
        torch.broadcast_tensors(cx - half_w, cy - half_h, cx + half_w, cy + half_h), dim=-1
    )  # (H, W, A, 4)
    boxes = boxes.reshape(-1, 4)
    if clip:
        boxes = boxes.clamp(0.0, 1.0)
    return boxes.to(dtype) if dtype is not None else boxes
