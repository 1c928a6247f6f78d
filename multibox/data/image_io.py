"""The one image decoder: every image multibox reads (datasets, checks, training, evaluation, detect, serve).

:func:`open_image` checks the header without decoding (format from the bytes, size, the pixel limit of
:func:`max_pixels_limit`: 100 MP unless ``max_pixels=`` or ``$MULTIBOX_MAX_MEGAPIXELS`` says otherwise), so a
JPEG can still be drafted; :func:`to_rgb` decodes to 8-bit RGB (truncated data is an error, 16-bit and float
images are scaled, alpha is dropped, EXIF orientation only with ``orient=True``); :func:`read_rgb` does both.
Every failure is an :class:`ImageDecodeError`. The rules in full: docs/data.md (Images).
"""

from __future__ import annotations

import io
import os
import re
import warnings
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from multibox.errors import ConfigError, DataError

__all__ = [
    "DEFAULT_MAX_MEGAPIXELS",
    "FORMAT_SUFFIXES",
    "IMAGE_SUFFIXES",
    "MAX_MEGAPIXELS_ENV",
    "ImageDecodeError",
    "max_pixels_limit",
    "open_image",
    "read_rgb",
    "to_rgb",
]

DEFAULT_MAX_MEGAPIXELS = 100.0
"""Largest image decoded by default, in millions of pixels."""

MAX_MEGAPIXELS_ENV = "MULTIBOX_MAX_MEGAPIXELS"
"""Environment variable that sets the pixel limit, in millions of pixels, where no ``max_pixels`` is given."""

FORMAT_SUFFIXES = {
    "JPEG": (".jpg", ".jpeg", ".jpe"),
    "PNG": (".png",),
    "BMP": (".bmp",),
    "GIF": (".gif",),
    "TIFF": (".tif", ".tiff"),
    "WEBP": (".webp",),
}
"""PIL format -> the lower-case endings of its files, the usual one first (what a converted image is named)."""

IMAGE_SUFFIXES = tuple(suffix for suffixes in FORMAT_SUFFIXES.values() for suffix in suffixes)
"""Lower-case endings of the image files the decoder reads (what `multibox detect` takes from a folder)."""

ImageSource = str | os.PathLike | bytes | IO[bytes]

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I;16S", "I")
_PROBLEM_KINDS = {"truncated": "truncated image", "too large": "image too large"}
_ADVICE = {
    "unreadable": "check that the file exists and can be read",
    "not an image": "replace it with a JPEG or PNG, or remove it from the dataset",
    "too large": f"shrink the image, or raise the limit with {MAX_MEGAPIXELS_ENV}=<megapixels>",
    "truncated": "the file is incomplete: copy or export it again, or remove it from the dataset",
    "corrupt": "replace the file or remove it from the dataset",
}


class ImageDecodeError(DataError):
    """An image that cannot be decoded: ``name`` (the file), ``reason`` (why) and ``kind``.

    ``kind`` is one of ``"unreadable"`` (the file cannot be read), ``"not an image"`` (no known image format),
    ``"too large"`` (over the pixel limit), ``"truncated"`` (the data stops early) and ``"corrupt"``
    (anything else Pillow refuses). ``str(error)`` is one line: ``"<name>: <reason>; <what to do>"``.
    """

    def __init__(self, name: str, reason: str = "cannot be decoded", kind: str = "corrupt") -> None:
        super().__init__(name, reason, kind)
        self.name, self.reason, self.kind = str(name), " ".join(str(reason).split()), kind

    def __str__(self) -> str:
        advice = _ADVICE.get(self.kind)
        return f"{self.name}: {self.reason}" + (f"; {advice}" if advice else "")

    @property
    def problem_kind(self) -> str:
        """The kind of :class:`~multibox.data.records.Problem` ``multibox data check`` reports for it."""
        return _PROBLEM_KINDS.get(self.kind, "unreadable image")


def max_pixels_limit(max_pixels: int | None = None) -> int:
    """The pixel limit in force: ``max_pixels`` if given, else ``$MULTIBOX_MAX_MEGAPIXELS``, else 100 MP."""
    if max_pixels is not None:
        if max_pixels <= 0:
            raise ConfigError(f"max_pixels must be positive, got {max_pixels}")
        return int(max_pixels)
    value = os.environ.get(MAX_MEGAPIXELS_ENV, "").strip()
    if not value:
        return int(DEFAULT_MAX_MEGAPIXELS * 1e6)
    try:
        megapixels = float(value)
    except ValueError:
        megapixels = float("nan")
    if not megapixels > 0 or megapixels == float("inf"):
        raise ConfigError(
            f"{MAX_MEGAPIXELS_ENV}={value!r} is not a positive number of megapixels; set it to e.g. "
            f"{DEFAULT_MAX_MEGAPIXELS:g} or unset it"
        )
    return max(1, int(megapixels * 1e6))


def _name(source: ImageSource | Image.Image, name: str | None) -> str:
    if name is not None:
        return str(name)
    if isinstance(source, str | os.PathLike):
        return str(source)
    filename = getattr(source, "filename", None) or getattr(source, "name", None)
    return str(filename) if isinstance(filename, str | os.PathLike) and str(filename) else "the image"


def _too_large(width: int, height: int, limit: int) -> str:
    return f"image of {width}x{height} = {width * height:,} pixels is over the limit of {limit:,} pixels"


def open_image(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | list[str] | None = None,
    name: str | None = None,
) -> Image.Image:
    """Open ``source`` (a path, bytes or a binary file) lazily, after checking its header.

    Args:
        source: the image file, its bytes, or an open binary file.
        max_pixels: the pixel limit (default :func:`max_pixels_limit`: ``$MULTIBOX_MAX_MEGAPIXELS`` or 100 MP).
        formats: Pillow format names to try (default: every format Pillow reads).
        name: how messages name the image (default: the path, or ``"the image"``).

    Returns:
        The PIL image, not decoded yet (a JPEG can still be drafted); decode it with :func:`to_rgb`.
        Close it (``with``) when done.

    Raises:
        ImageDecodeError: unreadable file, unknown format, empty or over-limit image, or a broken header.
    """
    label = _name(source, name)
    limit = max_pixels_limit(max_pixels)
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise ImageDecodeError(label, "the file is empty", "not an image")
        source = io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as error:
            raise ImageDecodeError(label, error.strerror or str(error), "unreadable") from error
        if path.is_dir():
            raise ImageDecodeError(label, "is a folder, not an image file", "unreadable")
        if size == 0:
            raise ImageDecodeError(label, "the file is empty", "not an image")
    try:
        with warnings.catch_warnings():
            # this module's own limit applies instead of Pillow's warning threshold
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(source, formats=formats)
    except Image.DecompressionBombError as error:
        found = re.search(r"\((\d+) pixels\)", str(error))
        pixels = f"{int(found.group(1)):,} pixels" if found else "too many pixels"
        limit_hint = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise ImageDecodeError(
            label,
            f"image of {pixels} rejected as a decompression bomb (over Pillow's limit of {limit_hint:,} "
            f"pixels; the limit here is {limit:,})",
            "too large",
        ) from error
    except UnidentifiedImageError as error:
        known = f" ({', '.join(formats)})" if formats else ""
        raise ImageDecodeError(
            label, f"not an image file in a known format{known}", "not an image"
        ) from error
    except OSError as error:
        if isinstance(source, str | os.PathLike) and error.errno is not None:
            raise ImageDecodeError(label, error.strerror or str(error), "unreadable") from error
        raise ImageDecodeError(label, f"broken image header: {error}", _kind(error)) from error
    except Exception as error:  # SyntaxError, struct.error, ValueError ... from a plugin's header parser
        raise ImageDecodeError(label, f"broken image header: {error}", _kind(error)) from error
    width, height = image.size
    if width * height > limit:
        image.close()
        raise ImageDecodeError(label, _too_large(width, height, limit), "too large")
    if width <= 0 or height <= 0:
        image.close()
        raise ImageDecodeError(label, f"the image is empty ({width}x{height} pixels)", "corrupt")
    return image


def _kind(error: BaseException) -> str:
    return "truncated" if "truncat" in str(error).lower() or isinstance(error, EOFError) else "corrupt"


def _eight_bit(image: Image.Image) -> Image.Image:
    """``image`` (loaded) as 8-bit RGB by the module's rules."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in _SIXTEEN_BIT:
        values = np.clip(np.asarray(image).astype(np.int64), 0, 65535)
        grey = ((values + 128) // 257).astype(np.uint8)  # round(v * 255 / 65535)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(image, np.float32), nan=0.0)
        grey = np.round(np.clip(values, 0.0, 1.0) * 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    if mode in ("P", "PA"):
        image = image.convert("RGBA")  # the palette's colours; transparency goes to alpha, then is dropped
    return image.convert("RGB")


def to_rgb(image: Image.Image, *, orient: bool = False, name: str | None = None) -> Image.Image:
    """Decode ``image`` (from :func:`open_image`, drafted or not, or already in memory) to 8-bit RGB.

    Args:
        image: the PIL image.
        orient: apply its EXIF orientation (the image as displayed).
        name: how messages name the image (default: its file name).

    Returns:
        A loaded ``RGB`` image (``image`` itself when it already is one and no rotation applies).

    Raises:
        ImageDecodeError: truncated or corrupt data, or a mode that cannot become RGB.
    """
    try:
        image.load()
        if orient:
            image = ImageOps.exif_transpose(image)
        return _eight_bit(image)
    except MemoryError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageDecodeError(_name(image, name), str(error), "too large") from error
    except Exception as error:  # OSError (truncated), SyntaxError, ValueError, zlib/struct errors ...
        raise ImageDecodeError(
            _name(image, name), str(error) or type(error).__name__, _kind(error)
        ) from error


def read_rgb(
    source: ImageSource,
    *,
    max_pixels: int | None = None,
    formats: tuple[str, ...] | list[str] | None = None,
    orient: bool = False,
    name: str | None = None,
) -> Image.Image:
    """:func:`open_image` then :func:`to_rgb`: the decoded 8-bit RGB image, the file closed again."""
    with open_image(source, max_pixels=max_pixels, formats=formats, name=name) as image:
        return to_rgb(image, orient=orient, name=name)  # leaving `with` closes the file, not the pixels
