"""The default boxes (anchors) of one feature map: MXNet's MultiBoxPrior, in its exact order, and
torchvision's DefaultBoxGenerator (:func:`default_boxes`), in the same order with its own arithmetic."""

from __future__ import annotations

import math
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
    height, width, sizes, ratios = _checked_layout(feature_shape, sizes, ratios)
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


def default_boxes(
    feature_shape: Sequence[int],
    sizes: Sequence[float] = (1.0,),
    ratios: Sequence[float] = (1.0,),
    steps: Sequence[float] = (-1.0, -1.0),
    clip: bool = True,
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Anchors of an ``(H, W)`` feature map as torchvision's ``DefaultBoxGenerator`` computes them.

    The anchors of a location and their order are :func:`multibox_prior`'s (every size with the first ratio,
    then the first size with every further ratio), so torchvision's scales ``s_k`` and aspect ratios ``[a, ...]``
    are ``sizes=[s_k, sqrt(s_k s_k+1)]``, ``ratios=[1, a, 1/a, ...]``. The arithmetic is torchvision's: widths
    ``s sqrt(r)`` and heights ``s / sqrt(r)`` in float64, then float32 (a ratio below 1 as the transpose of
    ``1/r``), clamped to ``[0, 1]`` when ``clip`` (before the corners are formed, so an anchor wider than the
    image becomes exactly as wide as the image), centres ``(i + 0.5) / (1 / step)``, and no ``H / W`` width
    correction on non-square maps. ``steps`` are ``(y, x)`` image fractions (non-positive: ``1 / H``, ``1 / W``).

    Returns:
        ``(H * W * A, 4)`` corner boxes ``[x1, y1, x2, y2]`` normalised to the image, row-major over
        ``(y, x, anchor)``, float32 (cast to ``dtype``); times the image size they are torchvision's pixel
        anchors bit for bit.
    """
    height, width, sizes, ratios = _checked_layout(feature_shape, sizes, ratios)
    if len(steps) != 2 or (steps[0] > 0) != (steps[1] > 0):
        raise ValueError(f"steps must be a (y, x) pair, both positive or both automatic, got {tuple(steps)}")
    # torchvision divides the centres by the number of steps across the image (or the map size)
    across_y = 1.0 / float(steps[0]) if steps[0] > 0 else height
    across_x = 1.0 / float(steps[1]) if steps[1] > 0 else width

    def width_height(size: float, ratio: float) -> list[float]:
        if ratio >= 1:
            root = math.sqrt(ratio)
            return [size * root, size / root]
        root = math.sqrt(1.0 / ratio)
        return [size / root, size * root]

    pairs = [width_height(s, ratios[0]) for s in sizes] + [width_height(sizes[0], r) for r in ratios[1:]]
    wh = torch.tensor(pairs, dtype=torch.float32, device=device)  # (A, 2)
    if clip:
        wh = wh.clamp(min=0, max=1)
    center_x = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) / across_x  # (W,)
    center_y = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) / across_y  # (H,)
    grid_y, grid_x = torch.meshgrid(center_y, center_x, indexing="ij")
    centers = torch.stack((grid_x, grid_y), dim=-1).reshape(-1, 1, 2)  # (H*W, 1, 2) as (cx, cy)
    half = 0.5 * wh
    boxes = torch.cat(torch.broadcast_tensors(centers - half, centers + half), dim=-1).reshape(-1, 4)
    return boxes.to(dtype) if dtype is not None else boxes


def _checked_layout(
    feature_shape: Sequence[int], sizes, ratios
) -> tuple[int, int, tuple[float, ...], tuple[float, ...]]:
    """``(H, W)`` as positive ints and the sizes and ratios as positive floats, or a ValueError naming them."""
    if len(feature_shape) != 2:
        raise ValueError(f"feature_shape must be (H, W), got {tuple(feature_shape)}")
    height, width = (int(v) for v in feature_shape)
    if height <= 0 or width <= 0:
        raise ValueError(f"feature_shape must be positive, got {(height, width)}")
    return height, width, check_positive_floats("sizes", sizes), check_positive_floats("ratios", ratios)
