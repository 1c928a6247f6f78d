"""Exact greedy non-maximum suppression over score-sorted rows, batched and without loops over boxes."""

from __future__ import annotations

import torch

# Elements of one (images, K, K) block; small enough to stay in cache on a CPU.
_BLOCK_ELEMENTS = 1 << 19


def _suppression_matrix(boxes: torch.Tensor, groups: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """``S[b, i, j]``: row ``i < j`` of the same group overlaps row ``j`` with IoU >= threshold.

    IoU is ``inter / (area_i + area_j - inter)`` in float32, the original's operation order, so threshold
    decisions are bit-exact. Boxes must have non-negative width and height (a zero union gives NaN, i.e.
    "no overlap", as the original's 0).

    Args:
        boxes: ``(B, K, 4)`` float32 corners; groups: ``(B, K)`` long, rows with different ids never interact.
    """
    x1, y1, x2, y2 = boxes.unbind(-1)  # each (B, K)
    area = (x2 - x1) * (y2 - y1)
    inter = torch.minimum(x2.unsqueeze(2), x2.unsqueeze(1))
    inter.sub_(torch.maximum(x1.unsqueeze(2), x1.unsqueeze(1))).clamp_(min=0)
    height = torch.minimum(y2.unsqueeze(2), y2.unsqueeze(1))
    height.sub_(torch.maximum(y1.unsqueeze(2), y1.unsqueeze(1))).clamp_(min=0)
    inter.mul_(height)
    union = torch.add(area.unsqueeze(2), area.unsqueeze(1), out=height).sub_(inter)
    overlap = inter.div_(union) >= iou_threshold  # (B, K, K)
    overlap &= groups.unsqueeze(2) == groups.unsqueeze(1)
    return overlap.triu_(diagonal=1)


def _greedy_nms_dense(boxes: torch.Tensor, groups: torch.Tensor, active: torch.Tensor, iou_threshold: float):
    """Fixed-point greedy NMS on the full ``(N, K, K)`` pair matrix, in cache-sized blocks of images."""
    n, k = active.shape
    keep = torch.empty_like(active)
    step = max(1, _BLOCK_ELEMENTS // (k * k))
    for start in range(0, n, step):
        block = slice(start, start + step)
        overlap = _suppression_matrix(boxes[block], groups[block], iou_threshold).float()  # (B, K, K)
        block_active = active[block]
        current = block_active
        while True:
            suppressed = torch.bmm(current.float().unsqueeze(1), overlap).squeeze(1) > 0  # (B, K)
            updated = block_active & ~suppressed
            if torch.equal(updated, current):
                break
            current = updated
        keep[block] = current
    return keep


def greedy_nms(
    boxes: torch.Tensor, groups: torch.Tensor, active: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """Greedy NMS of rows already sorted by descending score, as the original's loop.

    Row ``j`` is suppressed when an earlier kept, active row of the same group overlaps it with
    ``IoU >= iou_threshold``. The greedy recurrence is solved as the fixed point of
    ``keep_j = active_j and not any_i(keep_i and S_ij)``: iterate from "keep all" until nothing changes
    (the fixed point is unique and equals the sequential result; the number of rounds is the longest
    suppression chain, a handful in practice).

    When rows spread over many groups, each group is packed into its own ``(Kg, Kg)`` matrix (Kg = the
    largest group), which skips the pairs of different groups.

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
    num_groups = int(groups[active].max()) + 1
    groups = torch.where(active, groups, num_groups)  # inactive rows: one extra group, dropped below
    counts = torch.zeros(n, num_groups + 1, dtype=torch.long, device=boxes.device)
    counts.scatter_add_(1, groups, torch.ones_like(groups))  # (N, G+1)
    group_size = int(counts[:, :num_groups].max())
    if num_groups * group_size * group_size * 2 > k * k:
        position = torch.arange(k, device=boxes.device).expand(n, k)
        isolated = torch.where(active, groups, -1 - position)  # inactive rows interact with nothing
        return _greedy_nms_dense(boxes, isolated, active, iou_threshold)

    # Pack: stable sort by group keeps the score order inside each group.
    order = torch.sort(groups, dim=1, stable=True).indices  # (N, K)
    sorted_groups = torch.gather(groups, 1, order)
    group_start = torch.cumsum(counts, dim=1) - counts  # (N, G+1) first sorted row of each group
    slot = torch.arange(k, device=boxes.device) - torch.gather(group_start, 1, sorted_groups)
    packed_row = sorted_groups * group_size + slot  # (N, K); rows of the extra group fall past the end
    inside = sorted_groups < num_groups
    packed_row = torch.where(inside, packed_row, num_groups * group_size)  # one spill slot
    width = num_groups * group_size + 1
    packed_boxes = boxes.new_zeros(n, width, 4)
    packed_boxes.scatter_(
        1,
        packed_row.unsqueeze(-1).expand(-1, -1, 4),
        torch.gather(boxes, 1, order.unsqueeze(-1).expand(-1, -1, 4)),
    )
    packed_active = torch.zeros(n, width, dtype=torch.bool, device=boxes.device)
    packed_active.scatter_(1, packed_row, inside)
    packed_active[:, -1] = False
    blocks = n * num_groups
    keep_packed = _greedy_nms_dense(
        packed_boxes[:, :-1].reshape(blocks, group_size, 4),
        torch.zeros(blocks, group_size, dtype=torch.long, device=boxes.device),
        packed_active[:, :-1].reshape(blocks, group_size),
        iou_threshold,
    ).reshape(n, -1)
    keep_packed = torch.cat([keep_packed, keep_packed.new_zeros(n, 1)], dim=1)
    keep_sorted = torch.gather(keep_packed, 1, packed_row)
    return torch.empty_like(active).scatter_(1, order, keep_sorted)
