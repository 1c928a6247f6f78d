"""Pictures: detections drawn on images, and line plots of training curves (Pillow only, no matplotlib)."""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont


def class_colour(index: int) -> tuple[int, int, int]:
    """A distinct, stable colour per class (golden-ratio hues)."""
    hue = (index * 0.618033988749895) % 1.0
    r, g, b = colorsys.hsv_to_rgb(hue, 0.85, 0.95)
    return int(r * 255), int(g * 255), int(b * 255)


def draw_detections(
    image: Image.Image,
    boxes: np.ndarray,
    labels: Sequence[int],
    scores: Sequence[float] | None,
    class_names: Sequence[str],
    width: int | None = None,
) -> Image.Image:
    """A copy of ``image`` with ``boxes`` (``(K, 4)`` pixels x1y1x2y2) outlined in class colours and labelled
    ``name score``."""
    image = image.convert("RGB").copy()
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    line = width or max(1, round(min(image.size) / 200))
    for k, (box, label) in enumerate(zip(np.asarray(boxes).reshape(-1, 4), labels, strict=True)):
        colour = class_colour(int(label))
        x1, y1, x2, y2 = (float(v) for v in box)
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=line)
        name = class_names[int(label)] if int(label) < len(class_names) else str(int(label))
        text = name if scores is None else f"{name} {float(scores[k]):.2f}"
        left, top, right, bottom = draw.textbbox((x1, y1), text, font=font)
        top_y = y1 - (bottom - top) - 2 if y1 - (bottom - top) - 2 >= 0 else y1
        draw.rectangle([x1, top_y, x1 + (right - left) + 4, top_y + (bottom - top) + 2], fill=colour)
        draw.text((x1 + 2, top_y), text, fill=(0, 0, 0), font=font)
    return image


def plot_curves(
    series: Mapping[str, Sequence[tuple[float, float]]],
    path: str | Path,
    title: str = "",
    x_label: str = "epoch",
    size: tuple[int, int] = (720, 420),
) -> Path:
    """Write a PNG line plot of named ``(x, y)`` series with axes, ticks and a legend."""
    width, height = size
    left, right, top, bottom = 70, 20, 40, 50
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    points = [p for values in series.values() for p in values if np.isfinite(p[1])]
    if points:
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        x0, x1 = min(xs), max(xs) if max(xs) > min(xs) else min(xs) + 1
        y0, y1 = min(0.0, min(ys)), max(ys) if max(ys) > min(0.0, min(ys)) else 1.0
        y1 += (y1 - y0) * 0.05

        def to_pixel(x: float, y: float) -> tuple[float, float]:
            px = left + (x - x0) / (x1 - x0) * (width - left - right)
            py = height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom)
            return px, py

        for t in np.linspace(y0, y1, 6):
            _, py = to_pixel(x0, t)
            draw.line([left, py, width - right, py], fill=(230, 230, 230))
            draw.text((5, py - 6), f"{t:.3g}", fill=(60, 60, 60), font=font)
        for t in np.linspace(x0, x1, 6):
            px, _ = to_pixel(t, y0)
            draw.text((px - 10, height - bottom + 6), f"{t:.3g}", fill=(60, 60, 60), font=font)
        for index, (name, values) in enumerate(series.items()):
            colour = class_colour(index)
            pixels = [to_pixel(x, y) for x, y in values if np.isfinite(y)]
            if len(pixels) > 1:
                draw.line(pixels, fill=colour, width=2)
            for px, py in pixels if len(pixels) < 60 else []:
                draw.ellipse([px - 2, py - 2, px + 2, py + 2], fill=colour)
            draw.rectangle(
                [width - right - 150, top + 14 * index, width - right - 140, top + 14 * index + 10],
                fill=colour,
            )
            draw.text((width - right - 135, top + 14 * index - 1), name, fill=(0, 0, 0), font=font)
    draw.rectangle([left, top, width - right, height - bottom], outline=(0, 0, 0))
    draw.text((left, 12), title, fill=(0, 0, 0), font=font)
    draw.text((width // 2 - 15, height - 20), x_label, fill=(0, 0, 0), font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path
