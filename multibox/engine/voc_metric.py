"""Pascal VOC detection AP (VOC07 11-point and VOC2010+ area), the way the VOC devkit scores it.

Differences from the original MXNet ``MApMetric`` (spec 1.16), all deliberate: every image counts (also
images without ground truth, whose detections are false positives); difficult ground truth is excluded from
the positives count everywhere and detections matched to it are ignored (with ``use_difficult``, as the
original's ``--use-difficult``, it is scored as ordinary ground truth); the mean runs over every class that
has non-difficult ground truth.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)


def _pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of corner boxes ``(P, 4)`` x ``(Q, 4)`` with continuous areas (no +1), 0 for an empty union."""
    w = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    h = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = w * h
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 1e-12, inter / np.where(union > 1e-12, union, 1.0), 0.0)


def average_precision(recall: np.ndarray, precision: np.ndarray, use_07_metric: bool) -> float:
    """AP of a precision/recall curve: VOC07 11-point interpolation or the VOC2010+ area under the curve."""
    if use_07_metric:
        points = [precision[recall >= t].max() if (recall >= t).any() else 0.0 for t in np.linspace(0, 1, 11)]
        return float(np.mean(points))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]  # precision envelope, monotone from the right
    steps = np.flatnonzero(r[1:] != r[:-1])
    return float(np.sum((r[steps + 1] - r[steps]) * p[steps + 1]))


def match_by_class(det, gt, gt_class, det_class, difficult, iou_threshold: float):
    """The devkit's matching of one image, per class of its detections: yields ``(class, scores, flags)``
    with the class's detection scores in descending order and per detection 1 (true positive: IoU >
    ``iou_threshold`` with a ground truth not taken yet, greedy in score order), 2 (false positive) or 0
    (matched a difficult ground truth: ignored). ``det (K, 6)``, ``gt (M, >=5)``, ``difficult (M,)``."""
    for c in np.unique(det_class):
        d = det[det_class == c]
        d = d[np.argsort(-d[:, 1], kind="stable")]
        g, g_difficult = gt[gt_class == c, 1:5], difficult[gt_class == c]
        flags = np.full(len(d), 2, np.int8)  # false positive unless matched
        if len(g):
            iou = _pairwise_iou(d[:, 2:6], g)
            best = iou.argmax(axis=1)
            best_iou = iou[np.arange(len(d)), best]
            taken = np.zeros(len(g), bool)
            for j in range(len(d)):  # greedy in score order, as the devkit
                if best_iou[j] > iou_threshold:
                    k = best[j]
                    if g_difficult[k]:
                        flags[j] = 0
                    elif not taken[k]:
                        flags[j], taken[k] = 1, True
        yield int(c), d[:, 1], flags


class VOCMetric:
    """Accumulates detections and ground truth batch by batch; ``compute()`` returns per-class AP and mAP.

    Args:
        class_names: names of the object classes (no background).
        iou_threshold: a detection matches a ground truth when IoU > threshold (strict, as the devkit).
        use_07_metric: 11-point VOC07 AP (True) or VOC2010+ area AP (False).
        use_difficult: count difficult ground truth as ordinary ground truth (the original evaluate.py's
            `--use-difficult`): it counts among the positives and a detection on it is a true positive.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        iou_threshold: float = 0.5,
        use_07_metric: bool = True,
        use_difficult: bool = False,
    ):
        self.class_names = list(class_names)
        self.iou_threshold = iou_threshold
        self.use_07_metric = use_07_metric
        self.use_difficult = use_difficult
        self.reset()

    def reset(self) -> None:
        num_classes = len(self.class_names)
        self._scores: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._flags: list[list[np.ndarray]] = [[] for _ in range(num_classes)]
        self._positives = np.zeros(num_classes, np.int64)
        self.num_images = 0

    def update(self, detections: torch.Tensor | np.ndarray, labels: torch.Tensor | np.ndarray) -> None:
        """Add a batch.

        Args:
            detections: ``(B, K, 6)`` rows ``[class_id, score, x1, y1, x2, y2]``; ``class_id < 0``: skipped.
            labels: ``(B, M, 5 or 6)`` rows ``[cls, x1, y1, x2, y2(, difficult)]``, padding rows ``cls = -1``.
        """
        detections, labels = _as_numpy(detections), _as_numpy(labels)
        if self.use_difficult and labels.shape[-1] > 5:
            labels = labels.copy()
            labels[..., 5] = 0  # difficult ground truth scored as ordinary
        if len(detections) != len(labels):
            raise ValueError(f"{len(detections)} images of detections but {len(labels)} of labels")
        for det, gt in zip(detections, labels, strict=True):
            self._update_image(det[det[:, 0] >= 0], gt[gt[:, 0] >= 0])
            self.num_images += 1

    def _update_image(self, det: np.ndarray, gt: np.ndarray) -> None:
        num_classes = len(self.class_names)
        gt_class = gt[:, 0].astype(np.int64)
        det_class = det[:, 0].astype(np.int64)
        if (gt_class >= num_classes).any() or (det_class >= num_classes).any():
            raise ValueError(f"class id >= number of classes {num_classes}")
        difficult = gt[:, 5] > 0 if gt.shape[1] > 5 else np.zeros(len(gt), bool)
        np.add.at(self._positives, gt_class[~difficult], 1)
        for c, scores, flags in match_by_class(det, gt, gt_class, det_class, difficult, self.iou_threshold):
            self._scores[c].append(scores)
            self._flags[c].append(flags)

    def compute(self) -> dict:
        """``{"mAP", "ap" (per class name, None without ground truth), "recall", "precision"}`` (last two per
        class: final recall and precision at the lowest score)."""
        ap, final_recall, final_precision = {}, {}, {}
        for c, name in enumerate(self.class_names):
            npos = int(self._positives[c])
            scores = np.concatenate(self._scores[c]) if self._scores[c] else np.zeros(0)
            flags = np.concatenate(self._flags[c]) if self._flags[c] else np.zeros(0, np.int8)
            keep = flags > 0
            scores, flags = scores[keep], flags[keep]
            order = np.argsort(-scores, kind="stable")
            tp = np.cumsum(flags[order] == 1)
            fp = np.cumsum(flags[order] == 2)
            if npos == 0:
                ap[name] = final_recall[name] = final_precision[name] = None
                continue
            recall = tp / npos
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap[name] = average_precision(recall, precision, self.use_07_metric)
            final_recall[name] = float(recall[-1]) if len(recall) else 0.0
            final_precision[name] = float(precision[-1]) if len(precision) else 0.0
        valid = [v for v in ap.values() if v is not None]
        return {
            "mAP": float(np.mean(valid)) if valid else 0.0,
            "ap": ap,
            "recall": final_recall,
            "precision": final_precision,
        }

    def table(self) -> str:
        """Per-class AP table as text."""
        result = self.compute()
        width = max([len(n) for n in self.class_names] + [5])
        kind = "VOC07 11-point" if self.use_07_metric else "VOC area"
        kind += ", difficult counted" if self.use_difficult else ""
        lines = [f"{'class':<{width}}  AP ({kind}, IoU > {self.iou_threshold:g})  positives"]
        for c, name in enumerate(self.class_names):
            value = result["ap"][name]
            shown = "   -  " if value is None else f"{value:6.4f}"
            lines.append(
                f"{name:<{width}}  {shown:>{len(lines[0]) - width - 13}}  {int(self._positives[c]):9d}"
            )
        lines.append(f"{'mAP':<{width}}  {result['mAP']:>{len(lines[0]) - width - 13}.4f}")
        return "\n".join(lines)
