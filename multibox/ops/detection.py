"""MultiBoxDetection: decode, threshold, sort and suppress, as MXNet's operator or per class."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from multibox.ops._checks import as_anchor_matrix, check_rank
from multibox.ops.boxes import VARIANCES, decode_boxes
from multibox.ops.first_max import first_index_of
from multibox.ops.nms import greedy_nms
from multibox.ops.sort_keys import monotone_bits


def _check_inputs(cls_prob: torch.Tensor, loc_pred: torch.Tensor, anchors: torch.Tensor):
    anchors = as_anchor_matrix(anchors)
    check_rank("cls_prob", cls_prob, (3,))
    check_rank("loc_pred", loc_pred, (2, 3))
    n, num_rows, num_anchors = cls_prob.shape
    if num_rows < 2:
        raise ValueError(
            f"cls_prob needs a background row and at least one class, got shape {tuple(cls_prob.shape)}"
        )
    if anchors.shape[0] != num_anchors:
        raise ValueError(f"cls_prob has {num_anchors} anchors but anchors has {anchors.shape[0]}")
    expected = (n, num_anchors * 4) if loc_pred.dim() == 2 else (n, num_anchors, 4)
    if tuple(loc_pred.shape) != expected:
        raise ValueError(f"loc_pred must have shape {expected}, got {tuple(loc_pred.shape)}")
    return anchors, loc_pred.reshape(n, num_anchors, 4)


def _decode(anchors, offsets, variances, clip, out=None):
    return decode_boxes(anchors.float(), offsets.float(), variances, clip=clip, out=out)  # (..., 4)


def multibox_detection(
    cls_prob: torch.Tensor,
    loc_pred: torch.Tensor,
    anchors: torch.Tensor,
    clip: bool = True,
    threshold: float = 0.01,
    background_id: int = 0,
    nms_threshold: float = 0.5,
    force_suppress: bool = False,
    variances: Sequence[float] = VARIANCES,
    nms_topk: int = -1,
    *,
    per_class: bool = False,
    max_detections: int | None = None,
) -> torch.Tensor:
    """Detections from class probabilities and box offsets.

    ``per_class=False`` (default) is MXNet's ``contrib.MultiBoxDetection`` (CPU kernel): one detection per
    anchor with its best foreground class (background row 0 is skipped even when it dominates, and
    ``background_id`` is ignored, as in the original); ``id = -1`` where the score is below ``threshold``;
    valid rows stable-sorted by score (only when ``0 < nms_threshold <= 1``), the first ``nms_topk`` kept and
    the rest marked -1 with their pre-sort contents; greedy NMS marks suppressed rows -1 in place (score and
    box stay). Output ``(N, A, 6)``.

    ``per_class=True`` is caffe/torchvision-style: every (anchor, class) pair with score >= ``threshold``
    is a candidate (class ``background_id`` excluded), at most ``nms_topk`` per class, NMS per class (across
    classes with ``force_suppress``), survivors sorted by score and compacted. Output
    ``(N, max_detections, 6)`` (default 200), padding rows all -1. Usually gives higher mAP.

    Args:
        cls_prob: ``(N, C+1, A)`` class probabilities (softmax over dim 1).
        loc_pred: ``(N, 4A)`` or ``(N, A, 4)`` offsets ``(dx, dy, dw, dh)``.
        anchors: ``(A, 4)`` or ``(1, A, 4)`` corner anchors.

    Returns:
        rows ``[class_id, score, x1, y1, x2, y2]`` in normalised coordinates, float32.
    """
    anchors, offsets = _check_inputs(cls_prob, loc_pred, anchors)
    if per_class:
        return _detect_per_class(
            cls_prob,
            offsets,
            anchors,
            clip,
            threshold,
            background_id,
            nms_threshold,
            force_suppress,
            variances,
            nms_topk,
            200 if max_detections is None else int(max_detections),
        )
    return _detect_mxnet(
        cls_prob, offsets, anchors, clip, threshold, nms_threshold, force_suppress, variances, nms_topk
    )


def _descending_key(values: torch.Tensor, index: torch.Tensor, width: int) -> torch.Tensor:
    """int64 keys ordering float32 ``values`` descending, equal values by ascending ``index < width``: the
    value's bits made monotone in the high word, the reversed index in the low word (so keys are unique)."""
    return (monotone_bits(values) << 32) | (width - 1 - index)


def _top_rows(key: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest entries of each row of ``key (N, W)``, ties in position order.

    Returns their positions in ascending order ``(N, k)`` and the permutation ``(N, k)`` of those that orders
    them by descending key (``gather(ascending, 1, permutation)`` equals
    ``sort(key, descending=True, stable=True).indices[:, :k]``). An unsorted top-k, a mask and one sort of
    ``k`` unique integer keys are much cheaper than the full stable sort, which is only needed when ties
    straddle the k-th place; ascending positions let callers read per-row data front to back.
    """
    n, width = key.shape
    if k >= width:
        everything = torch.arange(width, device=key.device).expand(n, -1)
        return everything, torch.sort(key, dim=1, descending=True, stable=True).indices
    kth = torch.topk(key, k, dim=1, sorted=False).values.amin(dim=1, keepdim=True)  # (N, 1)
    chosen = key >= kth  # (N, W)
    if not bool((chosen.sum(1) == k).all()):  # ties straddle the k-th place: the full stable sort
        order = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]
        ascending, to_order = torch.sort(order, dim=1)  # ascending[i] = order[to_order[i]]
        rank = torch.arange(k, device=key.device).expand(n, -1)
        return ascending, torch.empty_like(to_order).scatter_(1, to_order, rank)  # its inverse
    ascending = chosen.nonzero()[:, 1].view(n, k)
    values = torch.gather(key, 1, ascending)
    if torch.jit.is_tracing():  # the tracer cannot record the dtype view
        return ascending, torch.sort(values, dim=1, descending=True, stable=True).indices
    index = torch.arange(k, device=key.device)
    return ascending, torch.sort(_descending_key(values, index, k), dim=1, descending=True).indices


def _detect_mxnet(
    cls_prob, offsets, anchors, clip, threshold, nms_threshold, force_suppress, variances, nms_topk
):
    n, _, num_anchors = cls_prob.shape
    device = cls_prob.device
    foreground = cls_prob[:, 1:, :]  # (N, C, A)
    score = foreground.amax(dim=1).float()  # (N, A) best foreground score; its class is found when needed
    valid = score >= threshold

    # Valid anchors compacted to the front in anchor order (only they are decoded, as the original).
    valid_count = valid.sum(1, keepdim=True)  # (N, 1)
    width = int(valid_count.max()) if n else 0
    out = torch.full((n, num_anchors, 6), -1.0, device=device)
    if width == 0:
        return out
    rows = out.view(-1, 6)  # (N*A, 6)
    if width == num_anchors and bool((valid_count == num_anchors).all()):
        # every anchor valid: the compaction is the identity
        compact_anchor = None
        key = score  # (N, A)
        out[..., 1] = score
        _decode(anchors.unsqueeze(0), offsets, variances, clip, out=out[..., 2:])
    else:
        # a flat list of the valid (image, anchor) pairs, image-major with anchors ascending, written
        # straight to their compacted rows of the output
        flat = valid.reshape(-1).nonzero().squeeze(1)  # (V,)
        image = flat // num_anchors
        anchor = flat - image * num_anchors
        counts = valid_count.view(-1)
        first_of_image = torch.cumsum(counts, 0) - counts  # (N,) list position of each image's first entry
        slot = torch.arange(flat.numel(), device=device) - first_of_image.index_select(0, image)
        list_rows = torch.empty((flat.numel(), 5), device=device)  # (V, 5) [score, x1, y1, x2, y2]
        list_score = torch.index_select(score.reshape(-1), 0, flat, out=list_rows[:, 0])
        _decode(
            anchors.index_select(0, anchor),
            offsets.reshape(-1, 4).index_select(0, flat),
            variances,
            clip,
            out=list_rows[:, 1:],
        )
        rows[:, 1:].index_copy_(0, image * num_anchors + slot, list_rows)
        compact = image * width + slot  # positions in the (N, width) compacted layout
        key = torch.full((n, width), -torch.inf, device=device)
        key.view(-1).index_copy_(0, compact, list_score)
        compact_anchor = torch.zeros((n, width), dtype=torch.long, device=device)
        compact_anchor.view(-1).index_copy_(0, compact, anchor)

    def class_of(positions: torch.Tensor) -> torch.Tensor:
        """Foreground class (first maximum) of the compacted rows at ``positions (N, K)`` (fastest when
        ascending: the probabilities are then read front to back); ``C`` for padding positions."""
        anchor = positions if compact_anchor is None else torch.gather(compact_anchor, 1, positions)  # (N, K)
        picked = torch.gather(foreground, 2, anchor.unsqueeze(1).expand(-1, foreground.shape[1], -1))
        return first_index_of(picked.float(), torch.gather(key, 1, positions)).float()  # of (N, C, K)

    if not 0 < nms_threshold <= 1:  # no sorting, no suppression: valid rows in anchor order
        everything = torch.arange(width, device=device).expand(n, -1)
        classes = class_of(everything)
        if compact_anchor is not None:  # compacted rows past an image's valid count stay -1
            classes = torch.where(everything < valid_count, classes, -1.0)
        out[:, :width, 0] = classes
        return out

    keep_count = valid_count if nms_topk <= 0 else valid_count.clamp(max=int(nms_topk))  # (N, 1)
    k = int(keep_count.max())
    # The first keep_count rows: valid rows stable-sorted by score (rows past them keep their compacted,
    # pre-sort contents with id -1, as the original).
    ascending, permutation = _top_rows(key, k)  # (N, K) compacted positions, their order by score
    order = torch.gather(ascending, 1, permutation)
    active = torch.arange(k, device=device).unsqueeze(0) < keep_count  # (N, K)
    image_start = torch.arange(0, n * num_anchors, num_anchors, device=device).unsqueeze(1)  # (N, 1)
    top = rows.index_select(0, (order + image_start).view(-1)).view(n, k, 6)  # (N, K, 6) compacted rows
    top[..., 0] = torch.gather(class_of(ascending), 1, permutation)
    groups = torch.zeros_like(order) if force_suppress else top[..., 0].long()
    keep = greedy_nms(top[..., 2:], groups, active, nms_threshold)
    top[..., 0].masked_fill_(~keep, -1.0)
    if bool(active.all()):
        out[:, :k] = top
    else:
        out[:, :k] = torch.where(active.unsqueeze(-1), top, out[:, :k])
    return out


def _detect_per_class(
    cls_prob,
    offsets,
    anchors,
    clip,
    threshold,
    background_id,
    nms_threshold,
    force_suppress,
    variances,
    nms_topk,
    max_detections,
):
    n, num_rows, num_anchors = cls_prob.shape
    if not 0 <= background_id < num_rows:
        raise ValueError(f"background_id {background_id} outside the {num_rows} class rows")
    if max_detections <= 0:
        raise ValueError(f"max_detections must be positive, got {max_detections}")
    if background_id == 0:
        scores = cls_prob[:, 1:, :]  # (N, C, A), a view
    else:
        scores = torch.cat([cls_prob[:, :background_id], cls_prob[:, background_id + 1 :]], dim=1)
    scores = scores.float()
    flat = scores.reshape(n, -1)  # (N, C*A), class-major; a view for the usual layouts
    total = flat.shape[1]
    do_nms = 0 < nms_threshold <= 1
    limit_per_class = 0 < nms_topk < num_anchors

    # Suppression of a candidate depends only on higher-scored ones, so NMS over the best P candidates is
    # exact for them; grow P until every image has max_detections survivors or runs out of candidates.
    # While P <= nms_topk no class can have more than nms_topk of them, so the per-class cap is free.
    prefix = min(total, max(2 * max_detections, 64))
    capped = False
    while True:
        if limit_per_class and prefix > nms_topk and not capped:
            kth = torch.topk(scores, int(nms_topk), dim=2).values[..., -1:]  # (N, C, 1)
            flat = torch.where(scores >= kth, scores, -1.0).reshape(n, -1)
            capped = True
        top_score, top_index = torch.topk(flat, prefix, dim=1)  # (N, P), descending
        active = (top_score >= threshold) & (top_score >= 0)
        class_index = top_index // num_anchors
        anchor_index = top_index % num_anchors
        anchor_boxes = anchors.float()[anchor_index]  # (N, P, 4)
        box_offsets = torch.gather(offsets, 1, anchor_index.unsqueeze(-1).expand(-1, -1, 4))
        boxes = _decode(anchor_boxes, box_offsets, variances, clip)
        if do_nms:
            groups = torch.zeros_like(class_index) if force_suppress else class_index
            keep = greedy_nms(boxes, groups, active, nms_threshold)
        else:
            keep = active
        enough = (keep.sum(1) >= max_detections) | ~active[:, -1]
        if prefix == total or bool(enough.all()):
            break
        prefix = min(total, prefix * 2)

    rows = torch.cat([class_index.float().unsqueeze(-1), top_score.unsqueeze(-1), boxes], dim=-1)  # (N, P, 6)
    order = torch.sort((~keep).to(torch.uint8), dim=1, stable=True).indices[:, :max_detections]
    out = torch.gather(rows, 1, order.unsqueeze(-1).expand(-1, -1, 6))
    kept = torch.gather(keep, 1, order)
    out = torch.where(kept.unsqueeze(-1), out, -1.0)
    if out.shape[1] < max_detections:
        pad = out.new_full((n, max_detections - out.shape[1], 6), -1.0)
        out = torch.cat([out, pad], dim=1)
    return out
