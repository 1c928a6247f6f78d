"""Colour jitter of the training recipe on uint8 RGB pixels: 8-bit HLS shifts (OpenCV's convention), contrast.

Hue, lightness and saturation shifts are integers on OpenCV's 8-bit HLS (``H`` in ``0..180``, clamped, not
wrapped; ``L``, ``S`` in ``0..255``); contrast is ``saturate(pixel * (1 + c))``. The round trip runs through
uint8 look-up tables (:func:`hls_tables`); how they are built and how exactly they match OpenCV: docs/data.md.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["ColourJitter", "adjust_contrast", "hls_shift", "hls_tables"]

_F = np.float32
_EPS = np.finfo(np.float32).eps
# Output-channel source per hue sector, in R, G, B order: 0 = max (p2), 1 = min (p1), 2 = falling middle
# (p1 + (p2 - p1) * (1 - f)), 3 = rising middle (p1 + (p2 - p1) * f). OpenCV's ``sector_data`` reordered.
_SECTOR_RGB = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))
_ROW_MAX, _ROW_MIN = 31, 32  # table rows 0..30 hold the middle value for f = row / 30


def _round_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=1)
def hls_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The shift-independent tables, built once per process (cached).

    Returns:
        ``lum`` ``(65536,)`` uint8 and ``sat`` ``(65536,)`` uint8: 8-bit L and S indexed by ``max * 256 + min``;
        ``hue`` ``(8 * 65536,)`` uint8: 8-bit H (0..180) indexed by
        ``(code * 256 + mid - min) * 256 + max - min``, code = ``(r >= g) + 2 (g >= b) + 4 (r >= b)``;
        ``rgb`` ``(33 * 65536,)`` uint8: output values indexed by ``row * 65536 + L * 256 + S``;
        ``rows`` ``(181, 3)`` int32: ``row * 65536`` for each output channel R, G, B and each H.
    """
    vmax, vmin = (a.astype(_F) * _F(1 / 255) for a in np.divmod(np.arange(65536), 256))
    diff, total = vmax - vmin, vmax + vmin
    lum_f = total * _F(0.5)
    valid = diff > _EPS
    with np.errstate(divide="ignore", invalid="ignore"):
        sat_f = np.where(lum_f < _F(0.5), diff / total, diff / (_F(2) - total))
    lum = _round_u8(lum_f * _F(255))
    sat = _round_u8(np.where(valid, sat_f, _F(0)) * _F(255))

    # Hue by ordering code (r >= g) | (g >= b) << 1 | (r >= b) << 2, mid - min and max - min: each
    # possible code fixes OpenCV's case (which channel is max, red first on ties) and the sign of the numerator.
    code, mm, d = np.meshgrid(np.arange(8), np.arange(256), np.arange(256), indexing="ij")
    base = np.array([240, 240, 120, 0, 0, 0, 120, 0], _F)[code]
    sign = np.array([-1, 1, 1, 0, 0, -1, -1, 1], _F)[code]
    with np.errstate(divide="ignore", invalid="ignore"):
        h = sign * (mm.astype(_F) * _F(1 / 255)) * (_F(60) / (d.astype(_F) * _F(1 / 255))) + base
    h = np.where(h < 0, h + _F(360), h)
    hue = _round_u8(np.where(d > 0, h, _F(0)) * _F(0.5)).reshape(-1)

    l8, s8 = (a.astype(_F) * _F(1 / 255) for a in np.divmod(np.arange(65536), 256))
    p2 = np.where(l8 <= _F(0.5), l8 * (_F(1) + s8), l8 + s8 - l8 * s8)
    p1 = _F(2) * l8 - p2
    f = (np.arange(31, dtype=_F) / _F(30))[:, None]
    middle = p1 + (p2 - p1) * f  # (31, 65536)
    rgb = _round_u8(np.concatenate([middle, p2[None], p1[None]]) * _F(255)).reshape(-1)

    rows = np.empty((181, 3), np.int32)
    for h8 in range(181):
        sector, k = divmod(h8 % 180, 30)
        kinds = {0: _ROW_MAX, 1: _ROW_MIN, 2: 30 - k, 3: k}
        rows[h8] = [kinds[source] << 16 for source in _SECTOR_RGB[sector]]
    return lum, sat, hue, rgb, rows


def hls_shift(image: np.ndarray, hue: int = 0, saturation: int = 0, lightness: int = 0) -> np.ndarray:
    """Shift 8-bit HLS of ``image`` ``(..., 3)`` uint8 RGB by integers; H clamped to [0, 180], L, S to [0, 255].

    Returns a new ``(..., 3)`` uint8 array (a copy even when all shifts are 0: the round trip is lossy,
    as in the original, so callers skip it themselves when nothing is to be shifted).
    """
    lum, sat, hue_table, rgb_table, rows = hls_tables()
    planes = np.ascontiguousarray(np.moveaxis(image.reshape(-1, 3), 1, 0))  # (3, N) R, G, B
    r, g, b = planes
    n = len(r)
    vmax = np.maximum(np.maximum(r, g), b)
    vmin = np.minimum(np.minimum(r, g), b)
    # Table keys assembled byte by byte into little-endian int64 (np.take is fastest with intp indices):
    # [min, max] -> max * 256 + min; [max - min, mid - min, code] -> (code * 256 + mid - min) * 256 + max - min.
    key_bytes = np.zeros((n, 8), np.uint8)
    key_bytes[:, 0], key_bytes[:, 1] = vmin, vmax
    hue_bytes = np.zeros((n, 8), np.uint8)
    np.subtract(vmax, vmin, out=hue_bytes[:, 0])
    mid = r ^ g ^ b ^ vmax ^ vmin  # the remaining channel value
    np.subtract(mid, vmin, out=hue_bytes[:, 1])
    code = (r >= g).view(np.uint8) | ((g >= b).view(np.uint8) << 1) | ((r >= b).view(np.uint8) << 2)
    hue_bytes[:, 2] = code
    h8 = np.take(hue_table, hue_bytes.view("<i8").reshape(n)).astype(np.intp)  # (N,) 8-bit H in 0..180

    # Shifted L and S for each (max, min) pair, as one table of L' * 256 + S'.
    lum_s = np.clip(lum.astype(np.intp) + lightness, 0, 255)
    sat_s = np.clip(sat.astype(np.intp) + saturation, 0, 255)
    ls = np.take((lum_s << 8) | sat_s, key_bytes.view("<i8").reshape(n))  # (N,) intp
    shifted_rows = rows[np.clip(np.arange(181) + hue, 0, 180)].T.astype(np.intp)  # (3, 181) for unshifted H

    out = np.empty((n, 3), np.uint8)
    for channel in range(3):
        index = np.take(shifted_rows[channel], h8)
        index += ls
        out[:, channel] = np.take(rgb_table, index)
    return out.reshape(image.shape)


def adjust_contrast(image: np.ndarray, contrast: float) -> np.ndarray:
    """``saturate_uint8(pixel * (1 + contrast))`` (no mean-preserving offset), via a 256-entry table."""
    table = _round_u8(np.arange(256, dtype=np.float64) * (1.0 + contrast))
    return np.take(table, image)


@dataclass(frozen=True)
class ColourJitter:
    """The original's colour distortion parameters and their random draw (spec 1.14 step 1).

    ``max_*`` bound uniform draws; each distortion is applied with its probability. Hue, saturation and
    lightness are integer steps of the 8-bit HLS channels; contrast is a factor offset (``pixel * (1 + c)``).
    """

    max_hue: int = 18
    max_saturation: int = 32
    max_lightness: int = 32
    max_contrast: float = 0.5
    hue_prob: float = 0.5
    saturation_prob: float = 0.5
    lightness_prob: float = 0.5
    contrast_prob: float = 0.5

    def sample(self, rng: np.random.Generator) -> tuple[int, int, int, float]:
        """Draw ``(hue, saturation, lightness, contrast)``: four ``U(-1, 1)`` magnitudes (integer parts for
        the HLS steps), then four ``U(0, 1)`` gates, in the original's order."""
        u = rng.uniform(-1.0, 1.0, 4)
        gates = rng.random(4)
        hue = int(u[0] * self.max_hue) if gates[0] < self.hue_prob else 0
        sat = int(u[1] * self.max_saturation) if gates[1] < self.saturation_prob else 0
        lum = int(u[2] * self.max_lightness) if gates[2] < self.lightness_prob else 0
        contrast = float(u[3] * self.max_contrast) if gates[3] < self.contrast_prob else 0.0
        return hue, sat, lum, contrast

    @staticmethod
    def apply(image: np.ndarray, hue: int, saturation: int, lightness: int, contrast: float) -> np.ndarray:
        """Apply drawn parameters to ``(..., 3)`` uint8 RGB; returns the input itself when nothing changes."""
        if hue or saturation or lightness:
            image = hls_shift(image, hue, saturation, lightness)
        if abs(contrast) > 1e-3:
            image = adjust_contrast(image, contrast)
        return image
