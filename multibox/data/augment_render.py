"""Render one output image from a source region with a single resize: decode (JPEG draft), crop, pad, resize.

The region is a pixel rectangle of the source image that may extend beyond it (the expand canvas): the part
outside the image is the fill colour. Only the visible part is resized, straight into its place in the
output, so each pixel is resampled exactly once and the fill is never interpolated or colour-jittered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from multibox.data.image_io import to_rgb

__all__ = ["INTERPOLATIONS", "draft_for_region", "render_region"]

# The original's inter_method 0..4 (OpenCV nearest, linear, cubic, area, lanczos4) as Pillow filters.
INTERPOLATIONS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "area": Image.Resampling.BOX,
    "lanczos": Image.Resampling.LANCZOS,
}

ColourFn = Callable[[np.ndarray], np.ndarray]


def draft_for_region(image: Image.Image, region_size: tuple[float, float], out_size: tuple[int, int]) -> int:
    """Ask a not yet decoded JPEG for DCT scaling by 1/2, 1/4 or 1/8 where the region stays >= ``out_size``.

    Args:
        image: a lazily opened image (other formats and loaded images are left alone).
        region_size: ``(w, h)`` of the region that will be resized, in source pixels.
        out_size: ``(w, h)`` it is resized to.

    Returns:
        The scale divisor ``k`` now in effect: source pixel ``x`` is decoded pixel ``x / k``.
    """
    if image.format not in ("JPEG", "MPO"):
        return 1
    factor = min(region_size[0] / out_size[0], region_size[1] / out_size[1])
    if factor < 2.0:
        return 1
    width, height = image.size
    request = (max(1, math.ceil(width / factor)), max(1, math.ceil(height / factor)))
    result = image.draft("RGB", request)
    if result is None:
        return 1
    return round(width / result[1][2])


def render_region(
    image: Image.Image,
    region: Sequence[float],
    out_size: tuple[int, int],
    resample: int = Image.Resampling.BILINEAR,
    fill: Sequence[int] = (127, 127, 127),
    colour: ColourFn | None = None,
    colour_before_resize: bool = False,
    flip: bool = False,
    draft: bool = True,
) -> np.ndarray:
    """Cut ``region`` out of ``image`` (fill outside it), resize it to ``out_size`` once, optionally mirror.

    Args:
        image: source image, lazily opened or loaded, any mode (decoded to 8-bit RGB by
            :func:`multibox.data.image_io.to_rgb`, which raises ``ImageDecodeError`` for truncated data).
        region: ``(x, y, w, h)`` pixels of the source (fractional allowed, at its full resolution); may
            extend beyond the image on any side.
        out_size: output ``(width, height)``.
        resample: Pillow filter.
        fill: RGB value outside the image.
        colour: uint8 ``(H, W, 3) -> (H, W, 3)`` pointwise function applied to the image pixels only
            (after the resize, or before it with ``colour_before_resize``, on the decoded region).
        flip: mirror the output horizontally (the region is given in unmirrored source coordinates).
        draft: allow JPEG DCT scaling when the region is at least twice the output size.

    Returns:
        ``(out_h, out_w, 3)`` uint8 RGB.
    """
    out_w, out_h = out_size
    rx, ry, rw, rh = region
    width, height = image.size
    k = draft_for_region(image, (rw, rh), out_size) if draft else 1
    image = to_rgb(image)  # decodes (after the draft) by multibox's rules; ImageDecodeError if it cannot
    # The visible part of the region, in source pixels, and its place in the output (rounded to pixels).
    vx0, vy0 = max(rx, 0), max(ry, 0)
    vx1, vy1 = min(rx + rw, width), min(ry + rh, height)
    sx, sy = out_w / rw, out_h / rh
    ox0, ox1 = round((vx0 - rx) * sx), round((vx1 - rx) * sx)
    oy0, oy1 = round((vy0 - ry) * sy), round((vy1 - ry) * sy)
    full = (ox0, oy0, ox1, oy1) == (0, 0, out_w, out_h)
    if ox1 <= ox0 or oy1 <= oy0:
        out = np.empty((out_h, out_w, 3), np.uint8)
        out[...] = np.asarray(fill, np.uint8)
        return out
    # Source box exactly covering the output pixels [ox0, ox1) x [oy0, oy1), kept inside the image.
    box = (
        min(max(rx + ox0 / sx, vx0), vx1) / k,
        min(max(ry + oy0 / sy, vy0), vy1) / k,
        min(max(rx + ox1 / sx, vx0), vx1) / k,
        min(max(ry + oy1 / sy, vy0), vy1) / k,
    )
    size = (ox1 - ox0, oy1 - oy0)
    if colour is not None and colour_before_resize:
        left, top = int(box[0]), int(box[1])
        right, bottom = min(math.ceil(box[2]), image.width), min(math.ceil(box[3]), image.height)
        piece = Image.fromarray(colour(np.asarray(image.crop((left, top, right, bottom)))))
        box = (box[0] - left, box[1] - top, box[2] - left, box[3] - top)
        part = np.asarray(piece.resize(size, resample, box=box))
    else:
        part = np.asarray(image.resize(size, resample, box=box))
        if colour is not None:
            part = colour(part)
    if full:
        out = part if part.flags.writeable or flip else part.copy()
    else:
        out = np.empty((out_h, out_w, 3), np.uint8)
        out[...] = np.asarray(fill, np.uint8)
        out[oy0:oy1, ox0:ox1] = part
    return np.ascontiguousarray(out[:, ::-1]) if flip else out
