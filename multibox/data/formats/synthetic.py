"""A synthetic "shapes" detection dataset, generated deterministically from a seed (no files needed)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache, partial

import numpy as np
from PIL import Image, ImageDraw

from multibox.data.records import DetectionDataset, DetectionRecord

SHAPE_CLASSES = ("circle", "square", "triangle", "star")


@dataclass(frozen=True)
class _Shape:
    kind: str
    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    colour: tuple[int, int, int]


def _outline(shape: _Shape) -> list[tuple[float, float]]:
    x1, y1, x2, y2 = shape.box
    cx = (x1 + x2) / 2
    if shape.kind == "triangle":
        return [(cx, y1), (x2, y2), (x1, y2)]
    if shape.kind == "star":  # five points; the box is the star's exact bounding box
        angles = [-math.pi / 2 + i * math.pi / 5 for i in range(10)]
        radii = [1.0 if i % 2 == 0 else 0.45 for i in range(10)]
        pts = [(math.cos(a) * r, math.sin(a) * r) for a, r in zip(angles, radii, strict=True)]
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        sx, sy = (x2 - x1) / (max(xs) - min(xs)), (y2 - y1) / (max(ys) - min(ys))
        return [(x1 + (px - min(xs)) * sx, y1 + (py - min(ys)) * sy) for px, py in pts]
    return [(x1, y1), (x2, y1), (x2, y2), (x1, y2)]


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A textured background: colour gradient, stripes and grain, ``(H, W, 3)`` uint8."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 215, size=3)
    direction = rng.uniform(-1, 1, size=(3, 2)) * 60 / max(height, width)
    image = base + (xx[..., None] * direction[:, 0] + yy[..., None] * direction[:, 1])
    angle = rng.uniform(0, math.pi)
    period = rng.uniform(6, 30)
    stripes = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
    image += stripes[..., None] * rng.uniform(5, 25)
    image += rng.normal(0, rng.uniform(2, 10), size=(height, width, 1))
    return np.clip(image, 0, 255).astype(np.uint8)


def render_shapes(seed: int, index: int, height: int, width: int, shapes: tuple[_Shape, ...]) -> Image.Image:
    """Draw one image of the dataset (called lazily by the records; pixels cached per process)."""
    return Image.fromarray(_render_pixels(seed, index, height, width, shapes))


@lru_cache(maxsize=2048)
def _render_pixels(seed: int, index: int, height: int, width: int, shapes: tuple[_Shape, ...]) -> np.ndarray:
    rng = np.random.default_rng([seed, index, 1])
    image = Image.fromarray(_background(rng, height, width))
    draw = ImageDraw.Draw(image)
    for shape in shapes:
        if shape.kind == "circle":
            draw.ellipse(shape.box, fill=shape.colour)
        else:
            draw.polygon(_outline(shape), fill=shape.colour)
    pixels = np.asarray(image)
    pixels.flags.writeable = False
    return pixels


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return w * h / union if union > 0 else 0.0


def _layout(rng, height, width, objects_per_image, size_range, class_names) -> tuple[_Shape, ...]:
    count = int(rng.integers(objects_per_image[0], objects_per_image[1] + 1))
    shapes: list[_Shape] = []
    for _ in range(50 * count):
        if len(shapes) == count:
            break
        side = rng.uniform(*size_range) * min(height, width)
        aspect = math.sqrt(rng.uniform(0.7, 1.4))
        w, h = min(side * aspect, width - 2), min(side / aspect, height - 2)
        x1, y1 = rng.uniform(0, width - w), rng.uniform(0, height - h)
        box = (round(x1, 1), round(y1, 1), round(x1 + w, 1), round(y1 + h, 1))
        if any(_iou(box, s.box) > 0.15 for s in shapes):
            continue
        colour = tuple(int(c) for c in rng.integers(0, 256, size=3))
        shapes.append(_Shape(class_names[int(rng.integers(len(class_names)))], box, colour))
    return tuple(shapes)


def make_shapes(
    num_images: int = 256,
    seed: int = 0,
    image_size: tuple[int, int] = (256, 256),
    objects_per_image: tuple[int, int] = (1, 4),
    size_range: tuple[float, float] = (0.15, 0.5),
    class_names: tuple[str, ...] = SHAPE_CLASSES,
    name: str = "shapes",
) -> DetectionDataset:
    """Circles, squares, triangles and stars of several sizes and colours on textured backgrounds.

    Every image is a pure function of ``(seed, index)``: the same arguments give the same pixels and boxes
    on any machine. Images are rendered on demand (``record.open_image()``), nothing is written to disk.

    Args:
        image_size: ``(height, width)`` in pixels.
        objects_per_image: inclusive range of objects per image.
        size_range: object side as a fraction of the shorter image side.
    """
    unknown = set(class_names) - set(SHAPE_CLASSES)
    if unknown:
        raise ValueError(f"unknown shape classes {sorted(unknown)}; available: {SHAPE_CLASSES}")
    height, width = image_size
    records = []
    for index in range(num_images):
        rng = np.random.default_rng([seed, index, 0])
        shapes = _layout(rng, height, width, objects_per_image, size_range, class_names)
        records.append(
            DetectionRecord(
                f"{name}_{seed}_{index:05d}",
                partial(render_shapes, seed, index, height, width, shapes),
                width,
                height,
                np.array([s.box for s in shapes], np.float32).reshape(-1, 4),
                [class_names.index(s.kind) for s in shapes],
            )
        )
    return DetectionDataset(records, list(class_names), name=f"{name}-{seed}")
