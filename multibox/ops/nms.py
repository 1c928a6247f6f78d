"""Exact greedy non-maximum suppression over score-sorted rows, batched and without loops over boxes."""

from __future__ import annotations

import torch

from multibox.ops.boxes import coordinate_planes
from multibox.ops.sort_keys import monotone_bits


def _overlap_at_least(
    first: tuple, second: tuple, iou_threshold: float, *, reuse_inputs: bool = False
) -> torch.Tensor:
    """``IoU >= iou_threshold`` of boxes given as broadcastable coordinate planes ``(x1, y1, x2, y2)``.

    IoU is ``inter / (area_first + area_second - inter)`` in float32, the original's operation order, so
    threshold decisions are bit-exact. Boxes must have non-negative width and height (a zero union gives
    NaN, i.e. "no overlap", as the original's 0). ``reuse_inputs=True`` (planes of one shape that the caller
    no longer needs) computes the areas in place of the x2 and y2 planes: fewer fresh buffers.
    """
    ax1, ay1, ax2, ay2 = first
    bx1, by1, bx2, by2 = second
    scratch = torch.maximum(ax1, bx1)
    inter = torch.minimum(ax2, bx2).sub_(scratch).clamp_(min=0)
    height = torch.minimum(ay2, by2).sub_(torch.maximum(ay1, by1, out=scratch)).clamp_(min=0)
    inter.mul_(height)
    if reuse_inputs:
        union = ax2.sub_(ax1).mul_(ay2.sub_(ay1)).add_(bx2.sub_(bx1).mul_(by2.sub_(by1)))
    else:
        union = torch.add((ax2 - ax1) * (ay2 - ay1), (bx2 - bx1) * (by2 - by1), out=height)
    return inter.div_(union.sub_(inter)) >= iou_threshold


# Widens the x-window of candidate partners: a computed IoU (float32) may exceed the exact one by a few
# ulps, and the window's bound is itself rounded; both are far below these margins.
_WINDOW_RELATIVE_SLACK = 1e-3
_WINDOW_ABSOLUTE_SLACK = 2.0**-20


def _group_x_key(groups: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """int64 keys ordering rows by group, then by the float32 coordinate ``x`` (the rows' sort key and the
    window bounds searched in it must be built alike)."""
    return (groups << 32) + monotone_bits(x)


def _window_pairs(boxes, groups, active, iou_threshold):
    """Suppression pairs ``(source, target)`` among same-group active rows: flat row indices
    ``image * K + row``, the source earlier in score order (= row order).

    A pair's IoU is at most its x-overlap over the width of the box that starts first, so ``IoU >= t`` needs
    the other box to start no later than ``x2 - t * width`` of the first. Sorted by (group, x1), each row's
    candidate partners are therefore one contiguous run after it, found by binary search; only those pairs
    get an IoU (a fraction of all same-group pairs when boxes spread out). Pair indices are int32 where they
    fit (half the memory traffic of int64 on the longest arrays).
    """
    n, k = active.shape
    device = boxes.device
    sorted_key, order = torch.sort(_group_x_key(groups, boxes[..., 0]), dim=1)  # (N, K): group, then x1
    planes = torch.gather(boxes.movedim(-1, 0), 2, order.expand(4, -1, -1))  # (4, N, K) in that order
    x1, x2 = planes[0], planes[2]
    slack = (x1.abs() + x2.abs()).mul_(_WINDOW_ABSOLUTE_SLACK)
    last_start = x2 - (iou_threshold * (1 - _WINDOW_RELATIVE_SLACK)) * (x2 - x1) + slack
    sorted_groups = torch.gather(groups, 1, order)
    run_end = torch.searchsorted(sorted_key, _group_x_key(sorted_groups, last_start), right=True)
    position = torch.arange(k, device=device)
    partners = torch.where(torch.gather(active, 1, order), run_end - position - 1, 0).clamp_(min=0).view(-1)
    first_pair = torch.cumsum(partners, 0)  # (N*K,) one past each row's last pair
    num_pairs = int(first_pair[-1])
    index_dtype = torch.int32 if num_pairs < 2**31 and n * k < 2**31 else torch.long
    first_pair -= partners
    row = torch.arange(n * k, device=device)
    # pair p (counted over all rows) of sorted row j pairs it with sorted row j + 1 + (p - first_pair[j])
    first = torch.repeat_interleave(row.to(index_dtype), partners, output_size=num_pairs)  # (P,)
    second = torch.repeat_interleave((row - first_pair + 1).to(index_dtype), partners, output_size=num_pairs)
    second += torch.arange(num_pairs, dtype=index_dtype, device=device)
    flat = planes.reshape(4, n * k)
    # index_select: several times faster on CPU than advanced indexing
    found = _overlap_at_least(
        tuple(flat.index_select(1, first)),
        tuple(flat.index_select(1, second)),
        iou_threshold,
        reuse_inputs=True,
    )
    found = found.nonzero().squeeze(1)
    # back to flat rows in score order; partners are inactive-free and of one group by construction
    row_of = (order + torch.arange(0, n * k, k, device=device).unsqueeze(1)).view(-1)  # sorted -> original
    first = row_of.index_select(0, first.index_select(0, found))
    second = row_of.index_select(0, second.index_select(0, found))
    return torch.minimum(first, second), torch.maximum(first, second)


# Rows per block when all pairs of earlier rows are needed: the lower triangle is covered block by block.
_ROW_BLOCK = 64


def _blocked_pairs(boxes, groups, active, iou_threshold):
    """Suppression pairs ``(source, target)`` as :func:`_window_pairs`, from the lower triangle of all pairs,
    block by block."""
    k = active.shape[1]
    device = boxes.device
    planes = coordinate_planes(boxes)  # (4, N, K): broadcasting stride-4 columns is several times slower
    found = []
    for start in range(0, k, _ROW_BLOCK):
        stop = min(k, start + _ROW_BLOCK)
        overlap = _overlap_at_least(
            tuple(planes[:, :, :stop].unsqueeze(-1)),  # earlier rows (N, stop, 1)
            tuple(planes[:, :, start:stop].unsqueeze(-2)),  # later rows (N, 1, b)
            iou_threshold,
        )  # (N, stop, b)
        overlap &= groups[:, :stop].unsqueeze(2) == groups[:, start:stop].unsqueeze(1)
        overlap &= active[:, :stop].unsqueeze(2) & active[:, start:stop].unsqueeze(1)
        overlap &= torch.arange(stop, device=device).unsqueeze(1) < torch.arange(start, stop, device=device)
        image, earlier, later = overlap.nonzero(as_tuple=True)
        found.append((image * k + earlier, image * k + later + start))
    return tuple(torch.cat(parts) for parts in zip(*found, strict=True))


def _settle(active: torch.Tensor, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The greedy result from the suppression pairs (flat rows, each ``source`` before its ``target``): the
    fixed point of ``keep_j = active_j and not any(keep_i for pairs (i, j))``, iterated from "keep all active
    rows".

    The fixed point is unique (pairs point forward) and equals the sequential loop's result; the number of
    rounds is the longest suppression chain (a handful in practice, at most ``K``), each a scatter over the
    pairs only.
    """
    n, k = active.shape
    if source.numel() == 0:
        return active.clone()
    flat_active = active.reshape(-1).int()
    keep = flat_active
    while True:
        suppressed = torch.zeros_like(flat_active).index_add_(0, target, keep.index_select(0, source))
        updated = torch.where(suppressed == 0, flat_active, 0)
        if torch.equal(updated, keep):
            return keep.bool().view(n, k)
        keep = updated


def greedy_nms(
    boxes: torch.Tensor, groups: torch.Tensor, active: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS of rows already sorted by descending score, as the original's loop.

    Row ``j`` is suppressed when an earlier kept, active row of the same group overlaps it with
    ``IoU >= iou_threshold`` (float32, the original's operation order). Exact, without a loop over rows
    (the method: docs/ops.md).

    Args:
        boxes: ``(N, K, 4)`` corners; groups: ``(N, K)`` non-negative integer ids (class ids, or all zero for
        class-agnostic NMS); active: ``(N, K)`` bool, rows taking part.

    Returns:
        ``(N, K)`` bool, True for kept rows (always a subset of ``active``).
    """
    n, k = active.shape
    if n == 0 or k == 0 or not bool(active.any()):
        return active.clone()
    boxes = boxes.detach().float()  # suppression is not differentiable
    groups = groups.long()
    num_groups = int(torch.where(active, groups, 0).max()) + 1
    groups = torch.where(active, groups, num_groups)  # inactive rows: one extra group, never paired
    counts = torch.zeros(n, num_groups + 1, dtype=torch.long, device=boxes.device)
    counts.scatter_add_(1, groups, torch.ones_like(groups))  # (N, G+1)
    largest_group = int(counts[:, :num_groups].max())
    if largest_group == 1:  # no two active rows share a group
        return active.clone()
    # (almost) one group: the window search would skip few pairs. While tracing: the tracer cannot record
    # the dtype view of the window's sort key, and the dense blocks need none.
    if 4 * (largest_group - 1) >= 3 * k or torch.jit.is_tracing():
        return _settle(active, *_blocked_pairs(boxes, groups, active, iou_threshold))
    return _settle(active, *_window_pairs(boxes, groups, active, iou_threshold))
