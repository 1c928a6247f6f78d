"""The one record type every dataset format reads into and writes from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from multibox.data.image_io import open_image

ImageSource = Path | Callable[[], Image.Image]


@dataclass
class DetectionRecord:
    """One image and its objects.

    Attributes:
        image_id: a stable identifier (file stem for file datasets).
        image: the image file, or a zero-argument function that generates it (synthetic data).
        width, height: image size in pixels, as the annotation declares it.
        boxes: ``(K, 4)`` float32 ``[x1, y1, x2, y2]`` in pixels.
        labels: ``(K,)`` int64 class ids (0-based, no background).
        difficult: ``(K,)`` bool, VOC ``difficult`` flags (ignored by VOC evaluation, used in training).
        crowd: ``(K,)`` bool, COCO ``iscrowd`` regions (ignored in training and evaluation by default).
        source_id: the dataset's own numeric image id (COCO ``id``), kept so results can name it.
    """

    image_id: str
    image: ImageSource
    width: int
    height: int
    boxes: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), np.float32))
    labels: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.int64))
    difficult: np.ndarray | None = None
    crowd: np.ndarray | None = None
    source_id: int | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        count = len(self.labels)
        self.difficult = np.zeros(count, bool) if self.difficult is None else np.asarray(self.difficult, bool)
        self.crowd = np.zeros(count, bool) if self.crowd is None else np.asarray(self.crowd, bool)
        lengths = {len(self.boxes), count, len(self.difficult.reshape(-1)), len(self.crowd.reshape(-1))}
        if len(lengths) != 1:
            raise ValueError(
                f"{self.image_id}: boxes ({len(self.boxes)}), labels ({count}), difficult and crowd flags "
                "must have the same length"
            )
        self.difficult = self.difficult.reshape(-1)
        self.crowd = self.crowd.reshape(-1)

    @property
    def num_objects(self) -> int:
        return len(self.labels)

    def open_image(self) -> Image.Image:
        """The image, lazily opened (file) or generated (synthetic); not yet decoded for files.

        Files go through :func:`multibox.data.image_io.open_image` (header checked, pixel limit); decode
        with :func:`~multibox.data.image_io.to_rgb`. Raises :class:`~multibox.data.image_io.ImageDecodeError`.
        """
        if callable(self.image):
            return self.image()
        return open_image(self.image)


@dataclass
class Problem:
    """Something wrong found while reading or checking a dataset: what, where, and whether training breaks.

    ``subject`` is what the load summary counts it by: the class name of an ``unknown class`` box, the file
    (``000123.xml``) or line (``train.lst:4``) of an unreadable annotation.
    """

    kind: str
    image_id: str
    detail: str = ""
    fatal: bool = False
    subject: str = ""


@dataclass
class DetectionDataset:
    """A list of records plus the class names they index, and problems met while reading.

    ``category_ids`` maps a class index to the dataset's own category id (COCO), when it has one.
    """

    records: list[DetectionRecord]
    class_names: list[str]
    name: str = ""
    problems: list[Problem] = field(default_factory=list)
    category_ids: list[int] | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> DetectionRecord:
        return self.records[index]

    @property
    def num_objects(self) -> int:
        return sum(r.num_objects for r in self.records)

    def source_ids(self) -> list[int] | None:
        """The images' own numeric ids (COCO files) when every image has a distinct one, else ``None``."""
        ids = [r.source_id for r in self.records]
        if None in ids or len(set(ids)) != len(ids):
            return None
        return ids
