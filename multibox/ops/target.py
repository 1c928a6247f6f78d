"""MultiBoxTarget: match anchors to ground truth, mine hard negatives, write training targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multibox.ops._checks import as_anchor_matrix, check_finite, check_rank
from multibox.ops.boxes import VARIANCES, coordinate_planes, encode_boxes
from multibox.ops.first_max import max_with_first_index

# The CPU kernel only accepts a bipartite match whose IoU is strictly above this value.
_MIN_MATCH_IOU = 1e-6
# float32 x > _MIN_MATCH_IOU  <=>  x >= _ABOVE_MIN_MATCH_IOU
_ABOVE_MIN_MATCH_IOU = float(torch.nextafter(torch.tensor(_MIN_MATCH_IOU), torch.tensor(1.0)))
_LOG2_E = 1.4426950408889634  # exp(x) = 2 ** (x log2 e)
_TINY = float(torch.finfo(torch.float32).smallest_normal) * 2.0**-23  # smallest positive (subnormal) float32
# Stands in for padding ground-truth rows: overlaps no anchor (IoU 0), so it never wins a tie against the
# valid rows, which come first.
_NOWHERE = (1e4, 1e4, 1e4, 1e4)


def _valid_ground_truth(labels: torch.Tensor, num_classes: int | None) -> torch.Tensor:
    """Validate ``labels (N, M, >=5)`` and return the ``(N, M)`` mask of ground-truth rows.

    As the CPU kernel, an image's ground truth is its leading rows up to the first row whose class is -1.
    """
    check_rank("labels", labels, (3,))
    if labels.shape[-1] < 5:
        raise ValueError(f"labels rows must be [cls, x1, y1, x2, y2, ...], got shape {tuple(labels.shape)}")
    cls = labels[..., 0]
    valid = torch.cumprod((cls != -1).to(torch.int32), dim=1).bool()  # (N, M)
    rows = labels[..., :5][valid]
    check_finite("labels of ground-truth rows", rows)
    if rows.numel():
        if bool((rows[:, 0] < 0).any()) or bool((rows[:, 0] != rows[:, 0].round()).any()):
            raise ValueError("labels: class ids must be non-negative integers (-1 marks padding rows)")
        if num_classes is not None and bool((rows[:, 0] >= num_classes).any()):
            bad = int(rows[:, 0].max())
            raise ValueError(f"labels: class id {bad} >= number of object classes {num_classes}")
        if bool((rows[:, 3] < rows[:, 1]).any()) or bool((rows[:, 4] < rows[:, 2]).any()):
            n, m = (
                valid & ((labels[..., 3] < labels[..., 1]) | (labels[..., 4] < labels[..., 2]))
            ).nonzero()[0]
            raise ValueError(f"labels: box with x2 < x1 or y2 < y1 at image {int(n)}, row {int(m)}")
    first_pad = (~valid).to(torch.int32).cumsum(1) == 1
    pad_rows = labels[first_pad & ~valid]
    if pad_rows.numel() and bool((pad_rows != -1).any()):
        raise ValueError("labels: the first padding row (cls == -1) of an image must be all -1")
    return valid


# Images per block of IoU work: keeps the (images, M, A) temporaries cache-sized.
_BLOCK_ELEMENTS = 1 << 18


def _overlaps(anchors: torch.Tensor, gt_boxes: torch.Tensor) -> torch.Tensor:
    """IoU of every ground truth with every anchor, ``(N, M, A)``, in MXNet's float32 operation order.

    Args:
        anchors: ``(B, A, 4)`` with ``B`` 1 (shared) or N; gt_boxes: ``(N, M, 4)``.

    Laid out ground-truth-major so every pass runs over the long anchor axis.
    """
    # contiguous coordinate rows: broadcasting a stride-4 column is ten times slower on CPU
    ax1, ay1, ax2, ay2 = (c.unsqueeze(1) for c in coordinate_planes(anchors))  # (B, 1, A) each
    gx1, gy1, gx2, gy2 = (gt_boxes[..., i].unsqueeze(-1) for i in range(4))  # (N, M, 1)
    inter = torch.minimum(ax2, gx2) - torch.maximum(ax1, gx1)
    inter.clamp_(min=0)
    height = torch.minimum(ay2, gy2) - torch.maximum(ay1, gy1)
    inter.mul_(height.clamp_(min=0))
    union = (ax2 - ax1) * (ay2 - ay1) + (gx2 - gx1) * (gy2 - gy1)  # area_anchor + area_gt, as the original
    union.sub_(inter)
    # A union <= 0 implies no intersection, so flooring it at the smallest positive float gives the
    # original's 0 there and changes nothing else.
    return inter.div_(union.clamp_(min=_TINY))


def _match_statistics(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, num_gt: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per anchor: best IoU over the valid ground truths and its (first) index, ``(N, A)`` each; and the
    bipartite candidates ``(N, A)`` bool: anchors among one of their image's ground truths' ``num_gt`` best
    (ties included) with IoU above the match minimum.

    Images are taken in order of their ground-truth count, in cache-sized blocks that each stop at the
    block's largest count, so padding rows cost (almost) nothing.
    """
    n, m = gt_boxes.shape[:2]
    a = anchors.shape[0]
    best_iou = torch.full((n, a), 0.0 if m else -1.0, device=anchors.device)  # padding rows have IoU 0
    best_gt = torch.zeros((n, a), dtype=torch.long, device=anchors.device)
    candidate = torch.zeros((n, a), dtype=torch.bool, device=anchors.device)
    if m == 0 or n == 0:
        return best_iou, best_gt, candidate
    order = torch.argsort(num_gt, stable=True)
    counts = num_gt[order].tolist()
    anchors = anchors.unsqueeze(0)
    start = counts.count(0)  # images without ground truth come first and keep the defaults
    while start < n:
        # as many images as fit the block budget at the largest count among them (counts ascend)
        stop = start + 1
        while stop < n and (stop - start + 1) * counts[stop] * a <= _BLOCK_ELEMENTS:
            stop += 1
        rows, width = order[start:stop], counts[stop - 1]
        iou = _overlaps(anchors, gt_boxes[rows, :width])  # (B, width, A); padding rows: IoU 0 (_NOWHERE)
        best_iou[rows], best_gt[rows] = max_with_first_index(iou)  # (B, A) each
        # A ground truth's greedy match is among its num_gt best anchors (fewer are taken before it).
        kth = torch.topk(iou, min(width, a), dim=2).values[..., -1:]  # (B, width, 1)
        candidate[rows] = (iou >= kth.clamp_(min=_ABOVE_MIN_MATCH_IOU)).any(dim=1)
        start = stop
    return best_iou, best_gt, candidate


def _greedy_bipartite(
    anchors: torch.Tensor, gt_boxes: torch.Tensor, valid: torch.Tensor, candidate: torch.Tensor, rounds: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ground truth takes its single best anchor, greedily by global IoU (ties: lowest anchor, then gt).

    A ground truth's match is among its ``rounds`` best anchors (fewer anchors than that are taken before
    it), so the greedy rounds only scan the ``candidate`` anchors, which gives the same result as scanning
    all anchors.

    Returns:
        ``matched_gt (N, A)`` long, -1 where the anchor was not matched, and ``matched_iou (N, A)``.
    """
    n, a = candidate.shape
    m = valid.shape[1]
    matched_gt = torch.full((n, a), -1, dtype=torch.long, device=anchors.device)
    matched_iou = torch.full((n, a), -1.0, device=anchors.device)
    slot = candidate.long().cumsum(1) - 1  # position of each candidate among its image's candidates
    width = int(slot[:, -1].max()) + 1 if n and a else 0
    if rounds == 0 or width <= 0:
        return matched_gt, matched_iou
    anchor_of_slot = torch.full((n, width), a, dtype=torch.long, device=anchors.device)  # a = padding
    image_index, anchor_index = candidate.nonzero(as_tuple=True)  # row-major: ascending anchors per image
    anchor_of_slot[image_index, slot[image_index, anchor_index]] = anchor_index
    padded_anchors = torch.cat([anchors, anchors.new_zeros(1, 4)])  # the padding slot overlaps nothing
    work = _overlaps(padded_anchors[anchor_of_slot], gt_boxes)  # (N, M, K), the same values as before
    work.masked_fill_(~valid.unsqueeze(-1), -1.0)
    work = work.transpose(1, 2).contiguous()  # (N, K, M): anchor-major like the original's scan
    rows = torch.arange(n, device=anchors.device)
    for _ in range(rounds):
        best, index = work.view(n, -1).max(dim=1)  # first maximum in (anchor, gt) order
        found = best > _MIN_MATCH_IOU
        if not bool(found.any()):
            break
        hit_rows, hit_slot, hit_gt = rows[found], (index // m)[found], (index % m)[found]
        hit_anchor = anchor_of_slot[hit_rows, hit_slot]
        matched_gt[hit_rows, hit_anchor] = hit_gt
        matched_iou[hit_rows, hit_anchor] = best[found]
        work[hit_rows, hit_slot, :] = -1.0  # anchor taken
        work[hit_rows, :, hit_gt] = -1.0  # ground truth taken
    return matched_gt, matched_iou


def _background_probability(cls_preds: torch.Tensor) -> torch.Tensor:
    """Softmax probability of class 0, ``(N, A)`` float32, from logits ``(N, C+1, A)``.

    Computed as ``1 / sum_j 2 ** ((x_j - x_0) log2 e)`` one class at a time: no ``(N, C+1, A)`` temporary (its
    fresh pages cost more than the arithmetic), no normalisation of the classes nobody reads here, and
    ``exp2``, faster than ``exp`` on CPU (the ranking it feeds is unchanged but for values within a few
    float32 ulps).
    """
    scaled_background = cls_preds[:, 0].float() * -_LOG2_E  # (N, A)
    total = torch.ones_like(scaled_background)
    term = torch.empty_like(scaled_background)
    for j in range(1, cls_preds.shape[1]):
        total.add_(torch.add(scaled_background, cls_preds[:, j], alpha=_LOG2_E, out=term).exp2_())
    return total.reciprocal_()


def _hard_negatives(
    candidate: torch.Tensor, background_prob: torch.Tensor, count: torch.Tensor
) -> torch.Tensor:
    """The ``count[n]`` candidates of each image with the lowest background probability, ties by anchor index
    (a stable ascending sort, done as a top-k plus a tie count): ``(N, A)`` bool."""
    k = int(count.max())
    if k <= 0:
        return torch.zeros_like(candidate)
    key = torch.where(candidate, background_prob, torch.inf)  # (N, A)
    smallest = torch.topk(key, min(k, key.shape[1]), dim=1, largest=False).values  # ascending
    kth = torch.gather(smallest, 1, (count.clamp(1, smallest.shape[1]) - 1).unsqueeze(1))  # (N, 1)
    below = key < kth
    tie = candidate & (key == kth)
    room = count.unsqueeze(1) - below.sum(1, keepdim=True)  # how many tied candidates still fit
    if bool((tie.sum(1, keepdim=True) > room).any()):  # only then the first `room` ties in anchor order
        tie &= tie.long().cumsum(1) <= room
    chosen = candidate & (below | tie)
    return chosen & (count > 0).unsqueeze(1)


def multibox_target(
    anchors: torch.Tensor,
    labels: torch.Tensor,
    cls_preds: torch.Tensor,
    overlap_threshold: float = 0.5,
    ignore_label: float = -1,
    negative_mining_ratio: float = -1.0,
    negative_mining_thresh: float = 0.5,
    minimum_negative_samples: int = 0,
    variances: Sequence[float] = VARIANCES,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Training targets as MXNet's ``contrib.MultiBoxTarget`` (CPU kernel semantics).

    Matching: greedy bipartite (each ground truth gets its best anchor), then every other anchor whose best
    IoU is strictly above ``overlap_threshold``. Negatives: with ``negative_mining_ratio > 0`` the
    ``int(num_pos * ratio)`` candidates (best IoU < ``negative_mining_thresh``) with the lowest background
    softmax probability; otherwise every non-positive anchor. Other anchors get ``ignore_label``.

    ``minimum_negative_samples`` is honoured (``n_neg = max(int(num_pos * ratio), minimum_negative_samples)``,
    as MXNet's GPU kernel), so with a value > 0 images without ground truth still train the background. The
    default 0 reproduces the CPU kernel, which ignores it.

    Args:
        anchors: ``(A, 4)`` or ``(1, A, 4)`` corner anchors.
        labels: ``(N, M, >=5)`` rows ``[cls, x1, y1, x2, y2, ...]``; padding rows all -1 (an image's ground
            truth ends at its first row with ``cls == -1``).
        cls_preds: ``(N, C+1, A)`` raw class logits (only used to rank negatives).

    Returns:
        ``loc_target (N, 4A)``, ``loc_mask (N, 4A)``, ``cls_target (N, A)`` in the dtype of ``cls_preds``
        (class ``c`` of ground truth becomes ``c + 1``; 0 is background).
    """
    anchors = as_anchor_matrix(anchors)
    check_rank("cls_preds", cls_preds, (3,))
    num_anchors = anchors.shape[0]
    if cls_preds.shape[2] != num_anchors:
        raise ValueError(f"cls_preds has {cls_preds.shape[2]} anchors but anchors has {num_anchors}")
    if labels.dim() == 3 and labels.shape[0] != cls_preds.shape[0]:
        raise ValueError(f"labels batch {labels.shape[0]} != cls_preds batch {cls_preds.shape[0]}")
    if cls_preds.shape[1] < 2:
        raise ValueError(f"cls_preds needs a background and at least one class, got {cls_preds.shape[1]}")
    valid = _valid_ground_truth(labels, num_classes=cls_preds.shape[1] - 1)  # (N, M)
    check_finite("anchors", anchors)

    out_dtype = cls_preds.dtype
    anchors = anchors.float()
    gt_boxes = torch.where(
        valid.unsqueeze(-1), labels[..., 1:5].float(), torch.tensor(_NOWHERE, device=labels.device)
    )
    n, m = valid.shape
    device = cls_preds.device

    num_gt = valid.sum(1)  # (N,)
    has_gt = num_gt > 0
    rounds = int(num_gt.max()) if n else 0
    best_iou, best_gt, candidate = _match_statistics(anchors, gt_boxes, num_gt)
    matched_gt, matched_iou = _greedy_bipartite(anchors, gt_boxes, valid, candidate, rounds)
    positive = matched_gt >= 0  # (N, A)
    if overlap_threshold > 0 and m:
        best_gt = torch.where(positive, matched_gt, best_gt)
        best_iou = torch.where(positive, matched_iou, best_iou)
        positive = positive | (best_iou > overlap_threshold)
    else:  # no threshold step: unmatched anchors keep best IoU -1, as the original
        best_gt = matched_gt.clamp_min(0)
        best_iou = matched_iou
    num_pos = positive.sum(1)  # (N,)

    if negative_mining_ratio > 0:
        num_neg = (num_pos.double() * float(negative_mining_ratio)).long()
        num_neg = torch.clamp(num_neg, min=int(minimum_negative_samples))
        num_neg = torch.minimum(num_neg, num_anchors - num_pos)
        candidate = ~positive & (best_iou < negative_mining_thresh)
        negative = _hard_negatives(candidate, _background_probability(cls_preds), num_neg)
    else:
        negative = ~positive & has_gt.unsqueeze(1)

    cls_target = torch.full((n, num_anchors), float(ignore_label), device=device)
    cls_target.masked_fill_(negative, 0.0)
    loc_target = torch.zeros((n, num_anchors, 4), device=device)
    image_index, anchor_index = positive.nonzero(as_tuple=True)  # only positives need their box encoded
    if len(image_index):
        gt_index = best_gt[image_index, anchor_index]
        cls_target[image_index, anchor_index] = labels[image_index, gt_index, 0].float() + 1
        loc_target[image_index, anchor_index] = encode_boxes(
            anchors[anchor_index], gt_boxes[image_index, gt_index], variances
        )
    loc_mask = positive.to(out_dtype).unsqueeze(-1).expand(-1, -1, 4).reshape(n, -1)
    return loc_target.reshape(n, -1).to(out_dtype), loc_mask, cls_target.to(out_dtype)
