"""Exact greedy non-maximum suppression over score-sorted rows, batched and without loops over boxes."""

from __future__ import annotations

import torch


def _suppression_block(
    row_boxes: torch.Tensor,
    col_boxes: torch.Tensor,
    same_group: torch.Tensor,
    col_offset: int,
    iou_threshold: float,
) -> torch.Tensor:
    """``S[b, i, j]``: row ``i`` would suppress column ``col_offset + j``: earlier, same group, IoU >= threshold.

    IoU is ``inter / (area_i + area_j - inter)`` in float32, the original's operation order, so threshold
    decisions are bit-exact. Boxes must have non-negative width and height (a zero union gives NaN, i.e.
    "no overlap", as the original's 0).

    Args:
        row_boxes: ``(B, R, 4)`` rows ``0..R-1``; col_boxes: ``(B, Q, 4)``; same_group: ``(B, R, Q)`` bool.
    """
    # contiguous coordinate planes: broadcasting stride-4 columns is several times slower on CPU
    rx1, ry1, rx2, ry2 = (c.unsqueeze(2) for c in row_boxes.movedim(-1, 0).contiguous())  # (B, R, 1)
    cx1, cy1, cx2, cy2 = (c.unsqueeze(1) for c in col_boxes.movedim(-1, 0).contiguous())  # (B, 1, Q)
    inter = torch.minimum(rx2, cx2)
    inter.sub_(torch.maximum(rx1, cx1)).clamp_(min=0)
    height = torch.minimum(ry2, cy2)
    height.sub_(torch.maximum(ry1, cy1)).clamp_(min=0)
    inter.mul_(height)
    union = torch.add((rx2 - rx1) * (ry2 - ry1), (cx2 - cx1) * (cy2 - cy1), out=height).sub_(inter)
    overlap = inter.div_(union) >= iou_threshold  # (B, R, Q)
    overlap &= same_group
    rows, cols = overlap.shape[1], overlap.shape[2]
    earlier = torch.arange(rows, device=overlap.device).unsqueeze(1) < (
        torch.arange(cols, device=overlap.device) + col_offset
    )
    return overlap & earlier


# Rows per step of the blocked fixed point: small enough that suppression chains inside a block are short.
_ROW_BLOCK = 32


def _greedy_nms_dense(boxes: torch.Tensor, groups: torch.Tensor, active: torch.Tensor, iou_threshold: float):
    """Greedy NMS over all pairs of rows, settled block by block in score order.

    For each block of rows, the pairs with every earlier row are computed (about half of all pairs in total),
    the block is suppressed by the kept rows of the earlier blocks (one matrix product), then its own fixed
    point is iterated, which takes at most as many rounds as the longest suppression chain inside the block.
    """
    n, k = active.shape
    keep = torch.zeros_like(active)
    for start in range(0, k, _ROW_BLOCK):
        stop = min(k, start + _ROW_BLOCK)
        candidate = active[:, start:stop]
        if not bool(candidate.any()):
            continue
        same_group = groups[:, :stop].unsqueeze(2) == groups[:, start:stop].unsqueeze(1)  # (N, stop, b)
        pairs = _suppression_block(boxes[:, :stop], boxes[:, start:stop], same_group, start, iou_threshold)
        pairs = pairs.float()
        if start > 0:
            earlier = torch.bmm(keep[:, :start].float().unsqueeze(1), pairs[:, :start]).squeeze(1)
            candidate = candidate & (earlier == 0)
        inner = pairs[:, start:stop]  # (N, b, b)
        current = candidate
        while True:
            suppressed = torch.bmm(current.float().unsqueeze(1), inner).squeeze(1) > 0  # (N, b)
            updated = candidate & ~suppressed
            if torch.equal(updated, current):
                break
            current = updated
        keep[:, start:stop] = current
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
        return _greedy_nms_dense(boxes, groups, active, iou_threshold)

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
