"""Plain-Python reference implementations (loops, float32 numpy) used as independent truth in tests."""

from __future__ import annotations

import numpy as np


def iou32(a: np.ndarray, b: np.ndarray) -> np.float32:
    """MXNet's CalculateOverlap in float32 scalar arithmetic."""
    a, b = a.astype(np.float32), b.astype(np.float32)
    w = max(np.float32(0), min(a[2], b[2]) - max(a[0], b[0]))
    h = max(np.float32(0), min(a[3], b[3]) - max(a[1], b[1]))
    inter = np.float32(w * h)
    union = np.float32((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
    return np.float32(0) if union <= 0 else np.float32(inter / union)


def sequential_nms(boxes: np.ndarray, groups: np.ndarray, active: np.ndarray, threshold: float) -> np.ndarray:
    """The original's greedy loop over score-sorted rows: returns the kept mask."""
    keep = active.copy()
    for i in range(len(boxes)):
        if not keep[i]:
            continue
        for j in range(i + 1, len(boxes)):
            if keep[j] and groups[i] == groups[j] and iou32(boxes[i], boxes[j]) >= np.float32(threshold):
                keep[j] = False
    return keep


def per_class_detection(prob, boxes, threshold, nms_threshold, topk, max_detections, force_suppress=False):
    """caffe-style detection of one image: prob (C+1, A), boxes (A, 4) -> list of (id, score, anchor)."""
    candidates = []
    for c in range(1, prob.shape[0]):
        order = np.argsort(-prob[c], kind="stable")
        if topk > 0:
            order = order[:topk]
        candidates += [(c - 1, prob[c, a], a) for a in order if prob[c, a] >= threshold]
    candidates.sort(key=lambda t: -t[1])
    kept = []
    for cls, score, a in candidates:
        if all(
            not (
                (force_suppress or k_cls == cls) and iou32(boxes[k_a], boxes[a]) >= np.float32(nms_threshold)
            )
            for k_cls, _, k_a in kept
        ):
            kept.append((cls, score, a))
    return kept[:max_detections]


def match_anchors(anchors: np.ndarray, gts: np.ndarray, overlap_threshold: float) -> list[int]:
    """The CPU kernel's matching for one image: the ground-truth index of every anchor, -1 when unmatched.

    Greedy bipartite (the largest remaining IoU above 1e-6 first; ties: lower anchor, then lower ground
    truth), then every other anchor whose first-best IoU is strictly above ``overlap_threshold``.
    """
    iou = [[iou32(a, g) for g in gts] for a in anchors]
    matched = [-1] * len(anchors)
    gt_taken = [False] * len(gts)
    for _ in range(len(gts)):
        best, pair = np.float32(1e-6), None
        for a in range(len(anchors)):
            if matched[a] >= 0:
                continue
            for g in range(len(gts)):
                if not gt_taken[g] and iou[a][g] > best:
                    best, pair = iou[a][g], (a, g)
        if pair is None:
            break
        matched[pair[0]], gt_taken[pair[1]] = pair[1], True
    for a in range(len(anchors)):
        if matched[a] < 0 and len(gts):
            g = int(np.argmax(iou[a]))  # first maximum
            if iou[a][g] > np.float32(overlap_threshold):
                matched[a] = g
    return matched
