"""Where a detector fails: per-class precision/recall curves, F1-best score thresholds and a confusion matrix
with background, accumulated batch by batch with the interface of :class:`~multibox.engine.voc_metric.VOCMetric`.

The curves and AP follow VOCMetric's rules exactly (greedy by score per class, IoU > threshold, difficult ground
truth ignored), so the AP here equals VOCMetric's on the same batches. ``write_diagnostics`` writes the curves,
the matrix and the per-class numbers as PNG and CSV files (Pillow only).
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from multibox.engine.voc_metric import VOCMetric, _pairwise_iou, average_precision
from multibox.viz import class_colour

DEFAULT_THRESHOLD = 0.5  # the score threshold where nothing is known (no true positive anywhere)
BACKGROUND = "background"


class DetectionDiagnostics(VOCMetric):
    """Accumulates detections and ground truth as :class:`VOCMetric` does (the same matching, the same
    curves), and keeps every image for the confusion matrix; ``compute()`` returns curves, thresholds and a
    confusion matrix.

    Args:
        class_names: names of the object classes (no background), ``C`` of them.
        iou_threshold: curves and AP: a detection matches a ground truth of its class when IoU > threshold
            (strict, as VOCMetric and the devkit).
        confusion_iou: confusion matrix: a detection matches a ground truth of any class when IoU >= this.
        use_difficult: difficult ground truth scored as ordinary, in the curves and the matrix (VOCMetric's).
    """

    def __init__(
        self,
        class_names: Sequence[str],
        iou_threshold: float = 0.5,
        confusion_iou: float = 0.5,
        use_difficult: bool = False,
    ):
        self.confusion_iou = confusion_iou
        super().__init__(class_names, iou_threshold, use_07_metric=True, use_difficult=use_difficult)

    def reset(self) -> None:
        super().reset()
        self._images: list[tuple[np.ndarray, np.ndarray]] = []  # per image: detections (K, 6), labels (M, 6)

    def _update_image(self, det: np.ndarray, gt: np.ndarray) -> None:
        """VOCMetric's per-class matching, and the image kept (labels padded to 6 columns: not difficult)."""
        super()._update_image(det, gt)
        if gt.shape[1] < 6:
            gt = np.concatenate([gt[:, :5], np.zeros((len(gt), 1), np.float32)], axis=1)
        self._images.append((det.copy(), gt.copy()))

    def compute(self, score_threshold: float | Mapping[str, float] | None = None) -> dict:
        """Curves, F1-best thresholds and the confusion matrix.

        ``score_threshold`` selects the detections the confusion matrix counts (score >= threshold of the
        detection's class): one number for every class, a ``{class name: threshold}`` mapping, or None; a class
        without a given threshold takes its F1-best one, else the pooled F1-best one, else ``DEFAULT_THRESHOLD``.

        Returns ``{"class_names", "iou_threshold", "images", "mAP_voc07", "mAP_area", "classes", "overall",
        "confusion"}``:

        - ``classes[name]``: ``ground_truths`` (non-difficult), ``detections`` (scored, i.e. not matched to
          difficult), ``scores`` / ``precision`` / ``recall`` float arrays ``(N,)`` in descending score order
          (the VOC curve, one point per detection), ``ap_voc07`` and ``ap_area`` (None without ground truth),
          ``best_threshold`` (the score of the F1-best operating point, None when no threshold gives a true
          positive), ``best_precision``, ``best_recall``, ``best_f1``;
        - ``overall``: the same ``best_*`` numbers of every class's detections pooled (micro F1);
        - ``confusion``: ``matrix`` int64 ``(C + 1, C + 1)``, ``labels`` (class names + ``"background"``),
          ``thresholds`` (per class, the ones used), ``iou_threshold`` (see :func:`confusion_matrix`).

        Operating points are taken only after the last of equal scores (a threshold keeps all of them); ties
        in F1 go to the higher threshold.
        """
        classes = {}
        for c, name in enumerate(self.class_names):
            scores, flags = _concat(self._scores[c], self._flags[c])
            classes[name] = _class_curve(scores, flags, int(self._positives[c]))
        pooled_scores, pooled_flags = _concat(
            [s for c in self._scores for s in c], [f for c in self._flags for f in c]
        )
        overall = _class_curve(pooled_scores, pooled_flags, int(self._positives.sum()))
        overall = {k: v for k, v in overall.items() if k.startswith("best_")}
        thresholds = _resolve_thresholds(self.class_names, classes, overall, score_threshold)
        matrix = confusion_matrix(self._images, len(self.class_names), thresholds, self.confusion_iou)
        valid = [c for c in classes.values() if c["ap_voc07"] is not None]
        return {
            "class_names": list(self.class_names),
            "iou_threshold": self.iou_threshold,
            "images": self.num_images,
            "mAP_voc07": float(np.mean([c["ap_voc07"] for c in valid])) if valid else 0.0,
            "mAP_area": float(np.mean([c["ap_area"] for c in valid])) if valid else 0.0,
            "classes": classes,
            "overall": overall,
            "confusion": {
                "matrix": matrix,
                "labels": [*self.class_names, BACKGROUND],
                "thresholds": [float(t) for t in thresholds],
                "iou_threshold": self.confusion_iou,
            },
        }


def _concat(scores: list[np.ndarray], flags: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The scored detections (flags > 0) of a class: scores ``(N,)`` float, flags ``(N,)`` int8."""
    s = np.concatenate(scores) if scores else np.zeros(0, np.float32)
    f = np.concatenate(flags) if flags else np.zeros(0, np.int8)
    return s[f > 0], f[f > 0]


def _class_curve(scores: np.ndarray, flags: np.ndarray, npos: int) -> dict:
    """The VOC curve of one class (as VOCMetric.compute) and its F1-best operating point."""
    order = np.argsort(-scores, kind="stable")
    scores = scores[order].astype(np.float64)
    tp = np.cumsum(flags[order] == 1)
    fp = np.cumsum(flags[order] == 2)
    recall = tp / max(npos, 1)
    precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
    curve = {
        "ground_truths": npos,
        "detections": int(len(scores)),
        "scores": scores,
        "precision": precision,
        "recall": recall,
        "ap_voc07": average_precision(recall, precision, True) if npos else None,
        "ap_area": average_precision(recall, precision, False) if npos else None,
        "best_threshold": None,
        "best_precision": 0.0,
        "best_recall": 0.0,
        "best_f1": 0.0,
    }
    if npos == 0 or len(scores) == 0:
        return curve
    ends = np.flatnonzero(np.r_[scores[1:] != scores[:-1], True])  # the last of each run of equal scores
    p, r = precision[ends], recall[ends]
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, np.finfo(np.float64).eps), 0.0)
    best = int(np.argmax(f1))  # the first maximum: the highest threshold
    if f1[best] > 0:
        curve.update(
            best_threshold=float(scores[ends[best]]),
            best_precision=float(p[best]),
            best_recall=float(r[best]),
            best_f1=float(f1[best]),
        )
    return curve


def _resolve_thresholds(
    names: Sequence[str], classes: Mapping[str, dict], overall: Mapping, given: float | Mapping | None
) -> np.ndarray:
    """Per class score threshold ``(C,)``: the given one, else F1-best, pooled F1-best, DEFAULT_THRESHOLD."""
    if given is not None and not isinstance(given, Mapping):
        return np.full(len(names), float(given))
    given = dict(given or {})
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"score thresholds for unknown classes {unknown}")
    fallback = overall["best_threshold"] if overall["best_threshold"] is not None else DEFAULT_THRESHOLD
    picked = [given.get(n, classes[n]["best_threshold"]) for n in names]
    return np.array([fallback if t is None else float(t) for t in picked], np.float64)


def confusion_matrix(
    images: Sequence[tuple[np.ndarray, np.ndarray]],
    num_classes: int,
    thresholds: np.ndarray,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """Confusion matrix with background, int64 ``(C + 1, C + 1)``: rows the true class, columns the predicted.

    ``images``: per image detections ``(K, 6)`` ``[class_id, score, x1, y1, x2, y2]`` and ground truth
    ``(M, 6)`` ``[cls, x1, y1, x2, y2, difficult]`` (no padding). The rule, per image:

    1. keep the detections with score >= ``thresholds[class_id]`` (``thresholds`` ``(C,)``);
    2. in descending score order (stable), each detection takes the ground truth of ANY class, not yet taken
       by an earlier detection, with the highest IoU, if that IoU >= ``iou_threshold`` (ties: the first row);
    3. a detection that took a ground truth of class ``t`` counts at ``[t, predicted]`` (the diagonal when
       the classes agree, a class confusion otherwise); one that took none (nothing overlaps enough, or a
       duplicate whose ground truth is taken) counts at ``[C, predicted]``, the background row: false positives;
    4. a ground truth no detection took counts at ``[t, C]``, the background column: missed;
    5. difficult ground truth takes part in the matching, but neither it nor the detection that took it is
       counted (as VOC ignores them). ``[C, C]`` is always 0.
    """
    matrix = np.zeros((num_classes + 1, num_classes + 1), np.int64)
    for det, gt in images:
        det = det[det[:, 1] >= thresholds[det[:, 0].astype(np.int64)]]
        det = det[np.argsort(-det[:, 1], kind="stable")]
        det_class, gt_class = det[:, 0].astype(np.int64), gt[:, 0].astype(np.int64)
        difficult = gt[:, 5] > 0
        matched = np.full(len(det), -1, np.int64)
        taken = np.zeros(len(gt), bool)
        if len(det) and len(gt):
            iou = _pairwise_iou(det[:, 2:6], gt[:, 1:5])
            for j in range(len(det)):
                row = np.where(taken, -1.0, iou[j])
                k = int(row.argmax())
                if row[k] >= iou_threshold:
                    matched[j], taken[k] = k, True
        hit = matched >= 0
        counted = hit & ~difficult[np.maximum(matched, 0)] if len(gt) else hit
        np.add.at(matrix, (gt_class[matched[counted]], det_class[counted]), 1)
        np.add.at(matrix, (num_classes, det_class[~hit]), 1)
        missed = ~taken & ~difficult
        np.add.at(matrix, (gt_class[missed], num_classes), 1)
    return matrix


def best_thresholds(result: Mapping) -> dict[str, float]:
    """``{class name: F1-best score threshold}`` of a ``compute()`` result; a class without one (no true
    positive at any threshold) gets :func:`overall_threshold`."""
    fallback = overall_threshold(result)
    return {
        name: fallback if c["best_threshold"] is None else float(c["best_threshold"])
        for name, c in result["classes"].items()
    }


def overall_threshold(result: Mapping) -> float:
    """The one F1-best score threshold of every class's detections pooled (a default for detect / serve);
    ``DEFAULT_THRESHOLD`` when no threshold gives a true positive."""
    best = result["overall"]["best_threshold"]
    return DEFAULT_THRESHOLD if best is None else float(best)


def _number(value) -> str:
    return "" if value is None else repr(float(value)) if isinstance(value, float) else str(value)


def write_diagnostics(result: Mapping, class_names: Sequence[str], out_dir: str | Path) -> list[Path]:
    """Write ``pr_curves.png``, ``confusion_matrix.png``, ``per_class.csv`` and ``confusion_matrix.csv`` of a
    ``compute()`` result into ``out_dir`` (created); returns their paths. CSV numbers are written exactly
    (``repr``), empty where None."""
    names = list(class_names)
    if len(names) != len(result["classes"]):
        raise ValueError(f"{len(names)} class names for {len(result['classes'])} classes")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    curves = list(result["classes"].values())
    series = {
        f"{n}  AP {'-' if c['ap_voc07'] is None else format(c['ap_voc07'], '.3f')}": (
            c["recall"],
            c["precision"],
        )
        for n, c in zip(names, curves, strict=True)
    }
    title = f"precision / recall (IoU > {result['iou_threshold']:g}), mAP VOC07 {result['mAP_voc07']:.3f}"
    paths = [draw_pr_curves(series, out / "pr_curves.png", title)]
    confusion = result["confusion"]
    labels = [*names, BACKGROUND]
    paths.append(
        draw_confusion_matrix(
            confusion["matrix"],
            labels,
            out / "confusion_matrix.png",
            f"confusion (IoU >= {confusion['iou_threshold']:g}; colour: share of the row)",
        )
    )
    columns = ("ap_voc07", "ap_area", "ground_truths", "detections")
    best = ("best_threshold", "best_precision", "best_recall", "best_f1")
    with open(out / "per_class.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["class", *columns, "f1_best_threshold", "precision", "recall", "f1"])
        for name, c in zip(names, curves, strict=True):
            writer.writerow([name, *(_number(c[k]) for k in columns + best)])
    paths.append(out / "per_class.csv")
    with open(out / "confusion_matrix.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true \\ predicted", *labels])
        for label, row in zip(labels, np.asarray(confusion["matrix"]), strict=True):
            writer.writerow([label, *(int(v) for v in row)])
    paths.append(out / "confusion_matrix.csv")
    return paths


def _font(size: int = 12) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 or no FreeType: the fixed bitmap font
        return ImageFont.load_default()


def draw_pr_curves(
    series: Mapping[str, tuple[np.ndarray, np.ndarray]],
    path: str | Path,
    title: str = "",
    size: tuple[int, int] = (900, 560),
) -> Path:
    """Write a PNG of named ``(recall (N,), precision (N,))`` curves on fixed [0, 1] axes, legend on the right."""
    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    legend_w = max([probe.textlength(name, font=font) for name in series] + [60]) + 36
    width, height = max(size[0], int(legend_w) + 360), max(size[1], 14 * len(series) + 110)
    left, right, top, bottom = 60, int(legend_w) + 20, 40, 50
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)

    def to_pixel(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return left + x * (width - left - right), height - bottom - y * (height - top - bottom)

    for t in np.linspace(0, 1, 6):
        px, py = to_pixel(t, t)
        draw.line([left, py, width - right, py], fill=(230, 230, 230))
        draw.line([px, top, px, height - bottom], fill=(230, 230, 230))
        draw.text((left - 30, py - 7), f"{t:.1f}", fill=(60, 60, 60), font=font)
        draw.text((px - 8, height - bottom + 6), f"{t:.1f}", fill=(60, 60, 60), font=font)
    for index, (name, (recall, precision)) in enumerate(series.items()):
        colour = class_colour(index)
        recall, precision = np.asarray(recall, np.float64), np.asarray(precision, np.float64)
        if len(recall) > 2000:  # enough points for the picture
            keep = np.unique(np.linspace(0, len(recall) - 1, 2000).astype(np.int64))
            recall, precision = recall[keep], precision[keep]
        xs, ys = to_pixel(recall, precision)
        pixels = list(zip(xs.tolist(), ys.tolist(), strict=True))
        if len(pixels) > 1:
            draw.line(pixels, fill=colour, width=2)
        elif pixels:
            draw.ellipse(
                [pixels[0][0] - 3, pixels[0][1] - 3, pixels[0][0] + 3, pixels[0][1] + 3], fill=colour
            )
        y = top + 14 * index
        draw.rectangle([width - right + 14, y + 2, width - right + 24, y + 12], fill=colour)
        draw.text((width - right + 30, y), name, fill=(0, 0, 0), font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    draw.text((left, 12), title, fill=(0, 0, 0), font=font)
    draw.text(((left + width - right) // 2 - 20, height - 22), "recall", fill=(0, 0, 0), font=font)
    _paste_vertical(image, "precision", (6, (top + height - bottom) // 2 - 30), font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _paste_vertical(image: Image.Image, text: str, at: tuple[int, int], font) -> None:
    """Draw ``text`` turned 90 degrees (reading upwards) with its top-left corner at ``at``."""
    probe = ImageDraw.Draw(image)
    left, top, right, bottom = probe.textbbox((0, 0), text, font=font)
    strip = Image.new("RGB", (int(right) + 2, int(bottom) + 2), (255, 255, 255))
    ImageDraw.Draw(strip).text((0, 0), text, fill=(0, 0, 0), font=font)
    image.paste(strip.rotate(90, expand=True), at)


def _count_text(value: int, draw: ImageDraw.ImageDraw, font, room: float) -> str:
    text = str(int(value))
    if draw.textlength(text, font=font) > room:
        text = f"{value / 1000:.0f}k" if value < 1e6 else f"{value / 1e6:.0f}M"
    return text


def draw_confusion_matrix(
    matrix: np.ndarray, labels: Sequence[str], path: str | Path, title: str = ""
) -> Path:
    """Write a PNG heatmap of a ``(L, L)`` count matrix (rows true, columns predicted), counts in the cells,
    ``labels`` on both axes (column labels turned upwards); colour is the count's share of its row."""
    matrix = np.asarray(matrix, np.int64)
    n = len(labels)
    font = _font(12)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    label_w = int(max(probe.textlength(str(label), font=font) for label in labels)) + 10
    cell = int(np.clip(720 // max(n, 1), 30, 64))
    left, top = label_w + 26, label_w + 46
    width = max(left + n * cell + 20, int(probe.textlength(title, font=font)) + 20)
    image = Image.new("RGB", (width, top + n * cell + 20), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    low, high = np.array([255, 255, 255], np.float64), np.array([33, 102, 172], np.float64)
    for i in range(n):
        for j in range(n):
            x, y = left + j * cell, top + i * cell
            fill = tuple(int(v) for v in low + (high - low) * share[i, j])
            draw.rectangle([x, y, x + cell, y + cell], fill=fill, outline=(200, 200, 200))
            text = _count_text(matrix[i, j], draw, font, cell - 4)
            tw = draw.textlength(text, font=font)
            ink = (255, 255, 255) if share[i, j] > 0.55 else (0, 0, 0)
            draw.text((x + (cell - tw) / 2, y + cell / 2 - 7), text, fill=ink, font=font)
        tw = draw.textlength(str(labels[i]), font=font)
        draw.text((left - tw - 6, top + i * cell + cell / 2 - 7), str(labels[i]), fill=(0, 0, 0), font=font)
        strip_w = int(draw.textbbox((0, 0), str(labels[i]), font=font)[2]) + 2
        _paste_vertical(image, str(labels[i]), (left + i * cell + cell // 2 - 7, top - strip_w - 4), font)
    draw.rectangle([left, top, left + n * cell, top + n * cell], outline=(0, 0, 0))
    draw.text((left, 8), title, fill=(0, 0, 0), font=font)
    draw.text((left, 24), "predicted class", fill=(0, 0, 0), font=font)
    _paste_vertical(image, "true class", (4, top), font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
