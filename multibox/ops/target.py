"""MultiBoxTarget: match anchors to ground truth, mine hard negatives, write training targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multibox.ops._checks import as_anchor_matrix, check_finite, check_rank
from multibox.ops.boxes import box_iou, encode_boxes

# The CPU kernel only accepts a bipartite match whose IoU is strictly above this value.
_MIN_MATCH_IOU = 1e-6


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


def _greedy_bipartite(iou: torch.Tensor, max_rounds: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Each ground truth takes its single best anchor, greedily by global IoU (ties: lowest anchor, then gt).

    Args:
        iou: ``(N, A, M)`` with -1 for invalid ground-truth columns.
        max_rounds: the largest number of valid ground truths of any image.

    Returns:
        ``matched_gt (N, A)`` long, -1 where the anchor was not matched, and ``matched_iou (N, A)``.
    """
    n, a, m = iou.shape
    matched_gt = torch.full((n, a), -1, dtype=torch.long, device=iou.device)
    matched_iou = torch.full((n, a), -1.0, dtype=iou.dtype, device=iou.device)
    work = iou.clone()
    rows = torch.arange(n, device=iou.device)
    for _ in range(max_rounds):
        flat = work.view(n, a * m)
        best, index = flat.max(dim=1)  # first maximum in (anchor, gt) row-major order
        found = best > _MIN_MATCH_IOU  # (N,)
        if not bool(found.any()):
            break
        anchor, gt = index // m, index % m
        hit_rows, hit_anchor, hit_gt = rows[found], anchor[found], gt[found]
        matched_gt[hit_rows, hit_anchor] = hit_gt
        matched_iou[hit_rows, hit_anchor] = best[found]
        work[hit_rows, hit_anchor, :] = -1.0  # anchor taken
        work[hit_rows, :, hit_gt] = -1.0  # ground truth taken
    return matched_gt, matched_iou


def multibox_target(
    anchors: torch.Tensor,
    labels: torch.Tensor,
    cls_preds: torch.Tensor,
    overlap_threshold: float = 0.5,
    ignore_label: float = -1,
    negative_mining_ratio: float = -1.0,
    negative_mining_thresh: float = 0.5,
    minimum_negative_samples: int = 0,
    variances: Sequence[float] = (0.1, 0.1, 0.2, 0.2),
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
    gt_boxes = labels[..., 1:5].float()  # (N, M, 4)
    n, m = valid.shape
    device = cls_preds.device

    iou = box_iou(anchors.unsqueeze(0), gt_boxes)  # (N, A, M)
    iou = torch.where(valid.unsqueeze(1), iou, -1.0)
    num_gt = valid.sum(1)  # (N,)
    has_gt = num_gt > 0

    matched_gt, matched_iou = _greedy_bipartite(iou, int(num_gt.max()) if n else 0)
    positive = matched_gt >= 0  # (N, A)
    if m:
        best_iou, best_gt = iou.max(dim=2)  # first maximum over ground truths
    else:
        best_iou = torch.full((n, num_anchors), -1.0, device=device)
        best_gt = torch.zeros((n, num_anchors), dtype=torch.long, device=device)
    if overlap_threshold > 0:
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
        background_prob = torch.softmax(cls_preds.float(), dim=1)[:, 0, :]  # (N, A)
        key = torch.where(candidate, background_prob, torch.inf)
        order = torch.sort(key, dim=1, stable=True).indices  # hardest (least background-like) first
        rank = torch.empty_like(order).scatter_(
            1, order, torch.arange(num_anchors, device=device).expand(n, -1).contiguous()
        )
        negative = candidate & (rank < num_neg.unsqueeze(1))
    else:
        negative = ~positive & has_gt.unsqueeze(1)

    gt_cls = labels[..., 0].float()  # (N, M)
    matched_cls = torch.gather(gt_cls, 1, best_gt) + 1 if m else torch.zeros_like(best_iou)
    cls_target = torch.full((n, num_anchors), float(ignore_label), device=device)
    cls_target = torch.where(negative, 0.0, cls_target)
    cls_target = torch.where(positive, matched_cls, cls_target)

    if m:
        matched_boxes = torch.gather(gt_boxes, 1, best_gt.unsqueeze(-1).expand(-1, -1, 4))  # (N, A, 4)
    else:
        matched_boxes = anchors.expand(n, -1, -1)
    # Unit boxes stand in for anchors that are not positive, so degenerate anchors cannot produce Inf/NaN.
    unit_box = torch.tensor([0.0, 0.0, 1.0, 1.0], device=device)
    safe_anchors = torch.where(positive.unsqueeze(-1), anchors.unsqueeze(0), unit_box)
    loc = encode_boxes(safe_anchors, matched_boxes, variances)  # (N, A, 4)
    loc_mask = positive.unsqueeze(-1).expand(-1, -1, 4)
    loc_target = torch.where(loc_mask, loc, 0.0)
    return (
        loc_target.reshape(n, -1).to(out_dtype),
        loc_mask.reshape(n, -1).to(out_dtype),
        cls_target.to(out_dtype),
    )
