"""Calibration images for INT8 quantization, and the split of a dataset into calibration and held-out images.

The images are decoded by :mod:`multibox.data.image_io` and resized by
:func:`multibox.model.resize.resize_for_network`, as :meth:`ExportedDetector.predict` feeds an exported file,
so calibration sees the inputs the detector sees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from multibox.data.image_io import to_rgb
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.errors import ConfigError, DataError
from multibox.model.resize import resize_for_network


class CalibrationImages(CalibrationDataReader):
    """ONNX Runtime's calibration reader over the images of ``records``: ``{input_name: (B, 3, H, W) uint8}``
    batches, ``(H, W) = data_shape``; a last partial batch is filled up with the first images again (a file
    exported with a fixed batch size takes only ``B``). ``len()`` is the number of batches and
    ``set_range`` limits the batches read, which ``quantize_static`` uses to calibrate in strides."""

    def __init__(
        self,
        records: Sequence[DetectionRecord],
        data_shape: tuple[int, int],
        batch_size: int = 1,
        input_name: str = "images",
    ) -> None:
        if not records:
            raise ValueError("calibration needs at least one image")
        self.records = list(records)
        self.data_shape = (int(data_shape[0]), int(data_shape[1]))
        self.batch_size = int(batch_size)
        self.input_name = input_name
        self._next, self._end = 0, len(self)

    def __len__(self) -> int:
        return math.ceil(len(self.records) / self.batch_size)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._next, self._end = int(start_index), min(int(end_index), len(self))

    def rewind(self) -> None:
        """Read all batches again from the first."""
        self.set_range(0, len(self))

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._next >= self._end:
            return None
        batch = self.batch(self._next)
        self._next += 1
        return {self.input_name: batch}

    def batch(self, index: int) -> np.ndarray:
        """Batch ``index``: ``(B, 3, H, W)`` uint8."""
        start = index * self.batch_size
        picks = [(start + i) % len(self.records) for i in range(self.batch_size)]
        return np.concatenate([self._image(self.records[p]) for p in picks])

    def _image(self, record: DetectionRecord) -> np.ndarray:
        with record.open_image() as image:
            return resize_for_network([to_rgb(image, name=record.image_id)], self.data_shape)


def split_for_calibration(
    dataset: DetectionDataset, calibration_images: int, check_images: int, what: str
) -> tuple[DetectionDataset, DetectionDataset]:
    """The first ``calibration_images`` records of ``dataset`` for calibration and the next ``check_images``
    (at most) for the accuracy check, which never sees a calibration image.

    ``what`` names the dataset in the errors: a :class:`ConfigError` when no image is left for the check, a
    :class:`DataError` when the held-out images have no boxes to score.
    """
    total = len(dataset)
    if total <= calibration_images:
        raise ConfigError(
            f"{what} has {total} usable images and --calibration-images is {calibration_images}, which leaves "
            f"none for the accuracy check: use at most {max(total - 1, 1)} for calibration, or a larger dataset"
        )
    held_out = dataset.records[calibration_images : calibration_images + check_images]
    if sum(r.num_objects for r in held_out) == 0:
        raise DataError(
            f"the {len(held_out)} held-out images of {what} (after the first {calibration_images}, used for "
            "calibration) have no boxes of the detector's classes, so the accuracy check has nothing to score: "
            "use a labelled dataset of these classes"
        )
    calibration = replace(dataset, records=dataset.records[:calibration_images], problems=[])
    return calibration, replace(dataset, records=list(held_out), problems=[])
