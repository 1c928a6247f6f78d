"""Box geometry of the training recipe (spec 1.14 steps 2-4): mirror, expand, min-IoU crop.

All boxes are ``(K, 4)`` float64 ``[x1, y1, x2, y2]`` normalised to the current image (``[0, 1]`` inside).
Each step is a pure function of given parameters plus a sampler that draws them from a
``numpy.random.Generator``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_SAMPLERS",
    "CropSampler",
    "crop_boxes",
    "expand_boxes",
    "flip_boxes",
    "sample_crop",
    "sample_expand",
    "valid_boxes",
]


def valid_boxes(boxes: np.ndarray) -> np.ndarray:
    """``(K,)`` bool: finite boxes with ``x2 > x1`` and ``y2 > y1`` (the original's label parser drops others)."""
    finite = np.isfinite(boxes).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def flip_boxes(boxes: np.ndarray) -> np.ndarray:
    """Horizontal mirror: ``x1' = 1 - x2``, ``x2' = 1 - x1``."""
    out = boxes.copy()
    out[:, 0], out[:, 2] = 1.0 - boxes[:, 2], 1.0 - boxes[:, 0]
    return out


def expand_boxes(boxes: np.ndarray, x0: float, y0: float, scale: float) -> np.ndarray:
    """Boxes on a canvas ``scale`` times the image with the image at ``(x0, y0)`` (image units).

    ``x' = (x + x0) / scale``, ``y' = (y + y0) / scale``, clipped to ``[0, 1]``.
    """
    offset = np.array([x0, y0, x0, y0])
    return np.clip((boxes + offset) / scale, 0.0, 1.0)


def sample_expand(
    rng: np.random.Generator, prob: float = 0.5, max_scale: float = 4.0, min_scale: float = 1.05
) -> tuple[float, float, float] | None:
    """Draw ``(x0, y0, scale)`` for :func:`expand_boxes`, or ``None`` (no expansion).

    With probability ``prob``: ``scale ~ U(1, max_scale)``; scales below ``min_scale`` mean no expansion;
    ``x0, y0 ~ U(0, scale - 1)``.
    """
    if not rng.random() < prob:
        return None
    scale = float(rng.uniform(1.0, max_scale))
    if scale < min_scale:
        return None
    x0, y0 = rng.uniform(0.0, scale - 1.0, 2)
    return float(x0), float(y0), scale


def crop_boxes(boxes: np.ndarray, rect: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Objects kept by a crop ``rect = (x, y, w, h)`` and their boxes relative to it.

    An object is kept when its centre lies in the crop, OpenCV ``Rect::contains`` style: ``x <= cx < x + w``
    and ``y <= cy < y + h``. Kept boxes are re-expressed in crop units and clipped to ``[0, 1]``.

    Returns:
        ``(K', 4)`` boxes and the ``(K',)`` indices of the kept objects.
    """
    x, y, w, h = rect
    cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
    cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
    keep = np.flatnonzero((x <= cx) & (cx < x + w) & (y <= cy) & (cy < y + h))
    out = (boxes[keep] - np.array([x, y, x, y])) / np.array([w, h, w, h])
    return np.clip(out, 0.0, 1.0), keep


@dataclass(frozen=True)
class CropSampler:
    """One min-IoU crop sampler of the original (``det_aug_default``'s ``rand_crop_*`` parameters).

    A trial draws a crop of area ``scale^2`` (of the current image) and aspect ratio ``aspect`` (relative to
    a square crop) and is accepted when some object has ``min_iou <= IoU <= max_iou`` with it and the
    coverage limits hold (``sample coverage = intersection / crop area``, ``object coverage =
    intersection / object area``). Images without objects accept the first trial.
    """

    min_iou: float = 0.0
    max_iou: float = 1.0
    min_scale: float = 0.3
    max_scale: float = 1.0
    min_aspect: float = 0.5
    max_aspect: float = 2.0
    min_sample_coverage: float = 0.0
    max_sample_coverage: float = 1.0
    min_object_coverage: float = 0.0
    max_object_coverage: float = 1.0
    max_trials: int = 25

    def draw(self, rng: np.random.Generator, image_aspect: float, n: int = 1) -> np.ndarray:
        """``n`` independent candidates ``(n, 4)`` ``[x, y, w, h]``; ``image_aspect`` = W / H of the image.

        ``s ~ U(min_scale, max_scale)``, ``r^2 ~ U(max(min_aspect / ar, s^2), min(max_aspect / ar, 1 / s^2))``,
        ``w = min(1, s r)``, ``h = min(1, s / r)``, ``x ~ U(0, 1 - w)``, ``y ~ U(0, 1 - h)``.
        """
        u = rng.random((n, 4))
        s = self.min_scale + (self.max_scale - self.min_scale) * u[:, 0] + 1e-12
        low = np.maximum(self.min_aspect / image_aspect, s * s)
        high = np.minimum(self.max_aspect / image_aspect, 1.0 / (s * s))
        r = np.sqrt(low + (high - low) * u[:, 1])
        w, h = np.minimum(1.0, s * r), np.minimum(1.0, s / r)
        return np.stack([(1.0 - w) * u[:, 2], (1.0 - h) * u[:, 3], w, h], axis=1)

    def accepts(self, rects: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """``(T,)`` bool: some object meets the IoU and coverage limits with each ``(T, 4)`` rect
        (always true without objects)."""
        rects = np.asarray(rects, np.float64).reshape(-1, 4)
        if len(boxes) == 0:
            return np.ones(len(rects), bool)
        x, y, w, h = (rects[:, i : i + 1] for i in range(4))  # (T, 1) each
        inter_w = np.clip(np.minimum(x + w, boxes[:, 2]) - np.maximum(x, boxes[:, 0]), 0.0, None)
        inter_h = np.clip(np.minimum(y + h, boxes[:, 3]) - np.maximum(y, boxes[:, 1]), 0.0, None)
        inter = inter_w * inter_h  # (T, K)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        union = w * h + area - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
        ok = (self.min_iou <= iou) & (iou <= self.max_iou)
        if self.min_sample_coverage > 0 or self.max_sample_coverage < 1:
            sample_cov = inter / (w * h)
            ok &= (self.min_sample_coverage <= sample_cov) & (sample_cov <= self.max_sample_coverage)
        if self.min_object_coverage > 0 or self.max_object_coverage < 1:
            object_cov = np.where(area > 0, inter / np.where(area > 0, area, 1.0), 0.0)
            ok &= (self.min_object_coverage <= object_cov) & (object_cov <= self.max_object_coverage)
        return ok.any(axis=1)


DEFAULT_SAMPLERS = tuple(CropSampler(min_iou=v) for v in (0.1, 0.3, 0.5, 0.7, 0.9))


def sample_crop(
    boxes: np.ndarray,
    rng: np.random.Generator,
    samplers: Sequence[CropSampler] = DEFAULT_SAMPLERS,
    image_aspect: float = 1.0,
) -> tuple[tuple[float, float, float, float], np.ndarray, np.ndarray] | None:
    """The original's crop search: samplers in random order, up to ``max_trials`` each, first success wins.

    A trial succeeds when its sampler accepts it and it keeps at least one object (by centre; any crop
    succeeds for an image without objects). A sampler's trials are drawn together (they are independent,
    so the first success has the original's distribution; the random stream differs).

    Returns:
        ``(rect, cropped_boxes, kept_indices)`` (see :func:`crop_boxes`), or ``None`` when all trials fail.
    """
    if len(boxes):
        cx = (boxes[:, 0] + boxes[:, 2]) * 0.5
        cy = (boxes[:, 1] + boxes[:, 3]) * 0.5
    for index in rng.permutation(len(samplers)):
        sampler = samplers[index]
        rects = sampler.draw(rng, image_aspect, sampler.max_trials)  # all trials at once: same distribution
        good = sampler.accepts(rects, boxes)
        if len(boxes):
            x, y, w, h = (rects[:, i : i + 1] for i in range(4))
            good &= ((x <= cx) & (cx < x + w) & (y <= cy) & (cy < y + h)).any(axis=1)
        if good.any():
            rect = tuple(float(v) for v in rects[int(np.argmax(good))])
            cropped, keep = crop_boxes(boxes, rect)
            return rect, cropped, keep  # type: ignore[return-value]
    return None
