"""The SSD training augmentation (spec 1.14) and the validation resize, on uint8 images.

Per training image: colour jitter, mirror, expand (zoom out), min-IoU crop, a random interpolation. The
geometry is decided on the boxes first, then the pixels come from one decode, one crop and one resize.
Input boxes with ``x2 <= x1`` or ``y2 <= y1`` (or not finite) are dropped first; output boxes are clipped to
``[0, 1]`` and dropped when empty; labels and difficult flags follow their boxes. How this differs from the
original C++ augmenter: docs/data.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from multibox.data.augment_colour import ColourJitter
from multibox.data.augment_geometry import (
    DEFAULT_SAMPLERS,
    CropSampler,
    expand_boxes,
    flip_boxes,
    sample_crop,
    sample_expand,
    valid_boxes,
)
from multibox.data.augment_render import INTERPOLATIONS, render_region

__all__ = ["ColourJitter", "CropSampler", "DEFAULT_SAMPLERS", "TrainAugmentation", "ValTransform"]

MEAN_PIXELS = (123, 117, 104)
Output = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _normalised(
    image: Image.Image, boxes: np.ndarray, size: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel boxes ``(K, 4)`` -> float64 boxes in image units, and the ``(K,)`` valid mask."""
    width, height = image.size if size is None else size
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4) / np.array(
        [width, height, width, height], np.float64
    )
    return boxes, valid_boxes(boxes)


def _finish(boxes: np.ndarray, labels: np.ndarray, difficult: np.ndarray) -> tuple[np.ndarray, ...]:
    """Clip to ``[0, 1]`` in float32 and drop boxes that are empty there."""
    out = np.clip(boxes, 0.0, 1.0).astype(np.float32).reshape(-1, 4)
    keep = valid_boxes(out)
    return out[keep], labels[keep], difficult[keep]


def _fill(fill: int | Sequence[int] | str, mean_pixels: Sequence[int]) -> tuple[int, int, int]:
    if isinstance(fill, str):
        if fill != "mean":
            raise ValueError(f"fill must be a value, an RGB triple or 'mean', got {fill!r}")
        fill = mean_pixels
    values = (fill,) * 3 if np.isscalar(fill) else tuple(fill)
    if len(values) != 3:
        raise ValueError(f"fill needs 1 or 3 values, got {fill!r}")
    return tuple(int(round(float(v))) for v in values)  # type: ignore[return-value]


class TrainAugmentation:
    """The original's training recipe; every step is a keyword with the spec's default.

    Args:
        data_shape: output ``(height, width)``.
        mean_pixels: the RGB colour of ``fill="mean"``.
        fill: expand fill, a value, an RGB triple or ``"mean"``; the original uses 127.
        colour: colour jitter parameters, ``None`` for none.
        colour_before_resize: jitter the decoded source region (the original's order) instead of the
            resized output (differs only through interpolation of the jittered values).
        mirror_prob: probability of a horizontal flip.
        expand_prob, max_expand, min_expand: zoom-out probability, largest scale, and the scale under
            which a drawn expansion is skipped.
        samplers: min-IoU crop samplers; crop_prob: probability of trying them (default ``n / (n + 1)``).
        interpolations: names drawn uniformly per image (``nearest bilinear bicubic area lanczos``).
        draft: allow JPEG DCT-scaled decoding when the region is at least twice the output.
    """

    def __init__(
        self,
        data_shape: tuple[int, int] = (300, 300),
        mean_pixels: Sequence[float] = MEAN_PIXELS,
        fill: int | Sequence[int] | str = 127,
        colour: ColourJitter | None = ColourJitter(),  # noqa: B008 (frozen dataclass)
        colour_before_resize: bool = False,
        mirror_prob: float = 0.5,
        expand_prob: float = 0.5,
        max_expand: float = 4.0,
        min_expand: float = 1.05,
        samplers: Sequence[CropSampler] = DEFAULT_SAMPLERS,
        crop_prob: float | None = None,
        interpolations: Sequence[str] = tuple(INTERPOLATIONS),
        draft: bool = True,
    ):
        self.data_shape = (int(data_shape[0]), int(data_shape[1]))
        self.fill = _fill(fill, mean_pixels)
        self.colour, self.colour_before_resize = colour, colour_before_resize
        self.mirror_prob = mirror_prob
        self.expand_prob, self.max_expand, self.min_expand = expand_prob, max_expand, min_expand
        self.samplers = tuple(samplers)
        n = len(self.samplers)
        self.crop_prob = n / (n + 1) if crop_prob is None else crop_prob
        unknown = [name for name in interpolations if name not in INTERPOLATIONS]
        if unknown or not interpolations:
            raise ValueError(f"interpolations must be among {sorted(INTERPOLATIONS)}, got {interpolations}")
        self.interpolations = tuple(INTERPOLATIONS[name] for name in interpolations)
        self.draft = draft

    def __call__(
        self,
        image: Image.Image,
        boxes: np.ndarray,
        labels: np.ndarray,
        difficult: np.ndarray,
        rng: np.random.Generator,
        size: tuple[int, int] | None = None,
    ) -> Output:
        """Augment one image.

        Args:
            image: PIL image, preferably lazily opened (not decoded yet) so a JPEG can be DCT-scaled.
            boxes: ``(K, 4)`` ``[x1, y1, x2, y2]`` pixels of the declared size ``size = (width, height)``
                (default: the image's own size); labels ``(K,)``; difficult ``(K,)``.
            rng: the only source of randomness.

        Returns:
            uint8 ``(H, W, 3)`` RGB of ``data_shape``, boxes ``(K', 4)`` float32 in ``[0, 1]``, labels ``(K',)``,
            difficult ``(K',)``.
        """
        boxes, valid = _normalised(image, boxes, size)
        labels, difficult = np.asarray(labels).reshape(-1)[valid], np.asarray(difficult).reshape(-1)[valid]
        boxes = boxes[valid]
        width, height = image.size

        jitter = self.colour.sample(rng) if self.colour is not None else (0, 0, 0, 0.0)
        flip = bool(rng.random() < self.mirror_prob)
        if flip:
            boxes = flip_boxes(boxes)
        # The region to render, (x, y, w, h) in pixels of the (mirrored) image: the canvas, then the crop.
        x0, y0, scale = sample_expand(rng, self.expand_prob, self.max_expand, self.min_expand) or (0, 0, 1)
        if scale > 1:
            boxes = expand_boxes(boxes, x0, y0, scale)
        region = (-x0 * width, -y0 * height, scale * width, scale * height)
        if self.samplers and rng.random() < self.crop_prob:
            found = sample_crop(boxes, rng, self.samplers, width / height)
            if found is not None:
                (cx, cy, cw, ch), boxes, keep = found
                labels, difficult = labels[keep], difficult[keep]
                x, y, w, h = region
                region = (x + cx * w, y + cy * h, cw * w, ch * h)
        resample = self.interpolations[int(rng.integers(len(self.interpolations)))]
        x, y, w, h = region
        if flip:
            x = width - (x + w)  # the same region of the stored, unmirrored image

        colour = None
        if jitter[:3] != (0, 0, 0) or abs(jitter[3]) > 1e-3:

            def colour(pixels: np.ndarray) -> np.ndarray:
                return ColourJitter.apply(pixels, *jitter)

        pixels = render_region(
            image,
            (x, y, w, h),
            (self.data_shape[1], self.data_shape[0]),
            resample=resample,
            fill=self.fill,
            colour=colour,
            colour_before_resize=self.colour_before_resize,
            flip=flip,
            draft=self.draft,
        )
        return (pixels, *_finish(boxes, labels, difficult))


class ValTransform:
    """Validation: resize the whole image to ``data_shape`` ``(height, width)`` (bilinear), boxes normalised.

    Same call as :class:`TrainAugmentation`; ``rng`` is unused.
    """

    def __init__(
        self,
        data_shape: tuple[int, int] = (300, 300),
        interpolation: str = "bilinear",
        draft: bool = True,
    ):
        self.data_shape = (int(data_shape[0]), int(data_shape[1]))
        self.resample = INTERPOLATIONS[interpolation]
        self.draft = draft

    def __call__(
        self,
        image: Image.Image,
        boxes: np.ndarray,
        labels: np.ndarray,
        difficult: np.ndarray,
        rng: np.random.Generator | None = None,
        size: tuple[int, int] | None = None,
    ) -> Output:
        boxes, valid = _normalised(image, boxes, size)
        labels, difficult = np.asarray(labels).reshape(-1)[valid], np.asarray(difficult).reshape(-1)[valid]
        width, height = image.size
        pixels = render_region(
            image,
            (0, 0, width, height),
            (self.data_shape[1], self.data_shape[0]),
            resample=self.resample,
            draft=self.draft,
        )
        return (pixels, *_finish(boxes[valid], labels, difficult))
