"""Image files the decoder tests build: truncated JPEGs, huge PNGs, 16-bit, CMYK, palette and alpha images."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def noise(height: int = 120, width: int = 160, seed: int = 0) -> np.ndarray:
    """``(H, W, 3)`` uint8 smooth-ish random pixels (a JPEG of it has a long scan)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def jpeg_bytes(pixels: np.ndarray, **options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90, **options)
    return buffer.getvalue()


def truncate_jpeg(data: bytes) -> bytes:
    """``data`` with its entropy-coded scan cut in half: every header segment (up to and including the
    start-of-scan) intact, so the header reads fine and only decoding finds the missing data."""
    scan = data.index(b"\xff\xda")  # SOS marker
    header_end = scan + 2 + struct.unpack(">H", data[scan + 2 : scan + 4])[0]
    return data[: header_end + (len(data) - header_end) // 2]


def write_truncated_jpeg(path: Path, pixels: np.ndarray) -> Path:
    path.write_bytes(truncate_jpeg(jpeg_bytes(pixels)))
    return path


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A complete, valid 1-bit black PNG of ``width`` x ``height``: zlib streams the zero rows, so it takes a
    fraction of a second, a few MB of memory and ~50 KB on disk for 20000x20000."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte 0, then the packed bits
    compressor = zlib.compressobj()
    block = row * 500
    parts = []
    for start in range(0, height, 500):
        parts.append(compressor.compress(block if start + 500 <= height else row * (height - start)))
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")
    )


def rgb16_png(pixels: np.ndarray) -> bytes:
    """A 16-bit-per-channel RGB PNG of ``(H, W, 3)`` uint16 ``pixels``, written by hand (Pillow cannot)."""
    height, width, _ = pixels.shape
    rows = pixels.astype(">u2").reshape(height, width * 6 // 2).view(np.uint8).reshape(height, width * 6)
    raw = b"".join(b"\x00" + rows[y].tobytes() for y in range(height))
    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(raw))
        + _chunk(b"IEND", b"")
    )


def grey16_ramp(height: int = 8, width: int = 512) -> np.ndarray:
    """``(H, W)`` uint16 covering 0..65535 in equal steps, the last value exactly 65535."""
    ramp = np.round(np.linspace(0, 65535, width)).astype(np.uint16)
    return np.tile(ramp, (height, 1))


def encode(image: Image.Image, image_format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, image_format, **options)
    return buffer.getvalue()
