"""Pictures of a dataset: its images with their ground-truth boxes, the same after the training augmentation,
and the images of a training batch, laid out in grids (``multibox data show`` and the first-batch picture)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from multibox.data.image_io import ImageDecodeError, to_rgb
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.viz import draw_detections

BACKGROUND = (114, 114, 114)  # the letterbox grey of empty cell space
LINE_WIDTH = 2


def image_grid(
    images: Sequence[Image.Image],
    columns: int = 4,
    cell: tuple[int, int] | None = None,
    background: tuple[int, int, int] = BACKGROUND,
) -> Image.Image:
    """``images`` in rows of ``columns`` equal cells (``min(columns, len(images))`` wide).

    The cell is ``cell`` ``(width, height)`` or the largest tile's width and height; each tile is centred in
    its cell, scaled down (aspect kept) when larger, and the rest of the cell is ``background``.
    """
    if not images:
        raise ValueError("image_grid needs at least one image")
    if columns < 1:
        raise ValueError(f"columns must be at least 1, got {columns}")
    columns = min(columns, len(images))
    width = cell[0] if cell else max(image.width for image in images)
    height = cell[1] if cell else max(image.height for image in images)
    rows = -(-len(images) // columns)
    canvas = Image.new("RGB", (columns * width, rows * height), background)
    for i, image in enumerate(images):
        tile = _fit(image.convert("RGB"), (width, height), enlarge=False)
        left = (i % columns) * width + (width - tile.width) // 2
        top = (i // columns) * height + (height - tile.height) // 2
        canvas.paste(tile, (left, top))
    return canvas


def _fit(image: Image.Image, size: tuple[int, int], enlarge: bool = True) -> Image.Image:
    """``image`` scaled (aspect kept) to fit ``size``; never enlarged unless ``enlarge``."""
    scale = min(size[0] / image.width, size[1] / image.height)
    if scale >= 1 and not enlarge or scale == 1:
        return image
    new = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(new, Image.Resampling.BILINEAR)


def _pick(size: int, count: int, seed: int | None) -> list[int]:
    """``count`` dataset indices: the first ones (``seed=None``) or a seeded random sample, in dataset order."""
    count = min(count, size)
    if seed is None:
        return list(range(count))
    return sorted(int(i) for i in np.random.default_rng(seed).choice(size, size=count, replace=False))


def _unreadable_tile(record: DetectionRecord, error: ImageDecodeError, size: int) -> Image.Image:
    tile = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.text(
        (4, 4),
        f"{record.image_id}: unreadable\n{error.reason[:40]}",
        fill=(255, 255, 255),
        font=ImageFont.load_default(),
    )
    return tile


def _drawn(
    image: Image.Image, boxes: np.ndarray, labels: np.ndarray, class_names: Sequence[str], cell: int | None
) -> Image.Image:
    """``image`` fitted to a ``cell`` square (when given) with ``boxes`` (pixels of ``image``) drawn on it."""
    if cell is not None:
        fitted = _fit(image, (cell, cell))
        boxes = boxes * np.array([fitted.width / image.width, fitted.height / image.height] * 2)
        image = fitted
    return draw_detections(image, boxes, labels, None, class_names, width=LINE_WIDTH)


def ground_truth_grid(
    dataset: DetectionDataset, count: int = 16, columns: int = 4, seed: int | None = 0, cell: int = 256
) -> Image.Image:
    """``count`` images of ``dataset`` (a seeded sample; the first ones with ``seed=None``), each fitted to a
    ``cell`` square with its annotated boxes outlined in class colours and named, in a grid of ``columns``.

    An image that cannot be decoded gets a black tile naming it."""
    tiles = []
    for index in _pick(len(dataset), count, seed):
        record = dataset[index]
        try:
            with record.open_image() as opened:
                image = to_rgb(opened, name=record.image_id)
        except ImageDecodeError as error:
            tiles.append(_unreadable_tile(record, error, cell))
            continue
        width, height = (
            (record.width, record.height) if record.width > 0 and record.height > 0 else image.size
        )
        scale = np.array([image.width / width, image.height / height] * 2, np.float64)
        tiles.append(_drawn(image, record.boxes * scale, record.labels, dataset.class_names, cell))
    return image_grid(tiles, columns, cell=(cell, cell))


def _pixels(image) -> np.ndarray:
    """An augmentation's image (uint8 ``(H, W, 3)`` array, or a ``(3, H, W)`` tensor/array) -> uint8 HWC."""
    array = image.detach().cpu().numpy() if hasattr(image, "detach") else np.asarray(image)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = array.transpose(1, 2, 0)
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float64)), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)


def augmented_grid(
    dataset: DetectionDataset,
    augmentation: Callable,
    count: int = 16,
    columns: int = 4,
    seed: int | None = 0,
    cell: int | None = None,
) -> Image.Image:
    """The images of :func:`ground_truth_grid` (same ``seed``) after ``augmentation`` (a
    :class:`~multibox.data.augment.TrainAugmentation`, called as the loader calls it: crowd boxes left out,
    boxes of the declared size, one ``rng`` per image from ``(seed, index)``), with the augmented boxes drawn.

    Tiles keep the augmentation's output size unless ``cell`` fits them to a square. An image that cannot be
    decoded gets a black tile naming it."""
    tiles = []
    for index in _pick(len(dataset), count, seed):
        record = dataset[index]
        keep = ~record.crowd
        rng = np.random.default_rng([0 if seed is None else seed, index])
        size = (record.width, record.height) if record.width > 0 and record.height > 0 else None
        try:
            with record.open_image() as opened:
                out, boxes, labels, _ = augmentation(
                    opened, record.boxes[keep], record.labels[keep], record.difficult[keep], rng, size=size
                )
        except ImageDecodeError as error:
            tiles.append(_unreadable_tile(record, error, cell or 256))
            continue
        image = Image.fromarray(_pixels(out))
        pixel_boxes = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([image.width, image.height] * 2)
        tiles.append(_drawn(image, pixel_boxes, np.asarray(labels), dataset.class_names, cell))
    return image_grid(tiles, columns, cell=(cell, cell) if cell else None)


def denormalise(
    images,
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    max_value: float = 255.0,
) -> np.ndarray:
    """A batch ``(B, 3, H, W)`` -> uint8 ``(B, H, W, 3)`` pixels.

    uint8 batches (what the loader gives training) are the pixels. Float batches are ``(x - mean) / std`` of
    images ``x`` in ``0..max_value``: ``255`` for the loader's ``normalize=True`` (``mean`` such as
    ``(123, 117, 104)``), ``1`` for 0..1 inputs and the model's ``image_mean`` / ``image_std`` units."""
    array = images.detach().cpu().numpy() if hasattr(images, "detach") else np.asarray(images)
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(array.shape)}")
    if array.dtype != np.uint8:
        mean_ = np.asarray(mean, np.float64).reshape(1, 3, 1, 1)
        std_ = np.asarray(std, np.float64).reshape(1, 3, 1, 1)
        values = (array.astype(np.float64) * std_ + mean_) * (255.0 / max_value)
        array = np.clip(np.rint(values), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array.transpose(0, 2, 3, 1))


def batch_grid(
    images,
    labels,
    class_names: Sequence[str],
    mean: Sequence[float] = (0.0, 0.0, 0.0),
    std: Sequence[float] = (1.0, 1.0, 1.0),
    columns: int = 4,
    max_value: float = 255.0,
    count: int | None = None,
) -> Image.Image:
    """A grid of a training batch: ``images (B, 3, H, W)`` (see :func:`denormalise` for ``mean``, ``std`` and
    ``max_value``) with the boxes of ``labels (B, M, 6)`` (rows ``[cls, x1, y1, x2, y2, difficult]``,
    corners in ``[0, 1]``, padding rows of class -1 skipped) drawn; the first ``count`` images (all by default)."""
    pixels = denormalise(images, mean, std, max_value)[:count]
    rows = labels.detach().cpu().numpy() if hasattr(labels, "detach") else np.asarray(labels)
    tiles = []
    for image, label in zip(pixels, rows, strict=False):
        label = np.asarray(label, np.float64).reshape(-1, 6)
        label = label[label[:, 0] >= 0]
        height, width = image.shape[:2]
        boxes = label[:, 1:5] * [width, height, width, height]
        tiles.append(_drawn(Image.fromarray(image), boxes, label[:, 0].astype(np.int64), class_names, None))
    return image_grid(tiles, columns)
