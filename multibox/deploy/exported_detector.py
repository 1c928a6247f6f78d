"""What the ONNX and TorchScript runners share: the model's ``detect()`` and the :class:`Detector` ``predict()``."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from multibox.errors import DataError
from multibox.inference.detections import Detections
from multibox.model.detection_settings import DetectionSettings
from multibox.model.resize import boxes_to_pixels, resize_for_network


class ExportedDetector:
    """Runs a file written by ``multibox export``. Subclasses implement :meth:`run`.

    Attributes:
        metadata: the export's JSON sidecar (class names, input size, detection settings ...).
        class_names: object class names, index = class id.
        data_shape: ``(height, width)`` of the network input.
        batch_size: the fixed batch size of the file, or ``None`` when any batch size works.
    """

    format = "exported"

    def __init__(self, metadata: dict) -> None:
        if "class_names" not in metadata or "data_shape" not in metadata:
            raise DataError(
                f"the {self.format} file carries no multibox metadata (class names, input size): export it with "
                "multibox export"
            )
        self.metadata = metadata
        self.class_names = list(metadata["class_names"])
        self.data_shape = tuple(int(s) for s in metadata["data_shape"])
        self.batch_size = metadata.get("batch_size")
        self.settings = dict(metadata["detection"])

    @property
    def detection(self) -> DetectionSettings:
        """The decoding settings baked into the file."""
        return DetectionSettings.from_dict(self.settings)

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``images (N, 3, H, W)`` uint8 -> ``boxes (N, K, 4), scores (N, K), classes (N, K), count (N,)``."""
        raise NotImplementedError

    def _run_any_batch(self, images: np.ndarray) -> tuple[np.ndarray, ...]:
        if self.batch_size is None or len(images) == self.batch_size:
            return self.run(images)
        step = int(self.batch_size)
        parts = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            pad = step - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.zeros((pad, *chunk.shape[1:]), chunk.dtype)])
            parts.append([out[: step - pad] for out in self.run(chunk)])
        return tuple(np.concatenate(column) for column in zip(*parts, strict=True))

    def detect(
        self,
        images: torch.Tensor | np.ndarray,
        threshold: float | None = None,
        max_detections: int | None = None,
        **settings,
    ) -> torch.Tensor:
        """As :meth:`multibox.model.SSD.detect`: ``images (N, 3, H, W)`` uint8 (or 0..1 floats) ->
        ``(N, K, 6)`` rows ``[class_id, score, x1, y1, x2, y2]``, normalised corners, ``class_id`` -1 on
        empty rows, best first.

        The NMS settings are fixed at export; passing a different value is an error. A higher ``threshold``
        or a smaller ``max_detections`` than the exported ones are applied to the output.
        """
        for name, value in settings.items():
            if name not in self.settings and name != "clip":
                raise TypeError(f"detect() got an unexpected keyword argument {name!r}")
            baked = self.settings.get(name, True)
            if value is not None and value != baked:
                raise ValueError(
                    f"this {self.format} file was exported with {name}={baked!r}; export again to use {value!r}"
                )
        if threshold is not None and threshold < self.settings["threshold"]:
            raise ValueError(
                f"this {self.format} file was exported with threshold={self.settings['threshold']}; "
                f"a lower one ({threshold}) needs a new export"
            )
        batch = _as_uint8_numpy(images)
        boxes, scores, classes, _ = self._run_any_batch(batch)
        rows = np.concatenate([classes[..., None].astype(np.float32), scores[..., None], boxes], axis=-1)
        if threshold is not None:
            rows[rows[..., 1] < threshold] = -1.0
        rows[rows[..., 0] < 0] = -1.0
        if max_detections is not None:
            rows = rows[:, :max_detections]
        return torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))

    @property
    def display_threshold(self) -> float:
        """The score threshold for showing detections baked into the file (tuned on validation by training)."""
        return self.detection.display_threshold

    def predict(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Detections]:
        """Detections with score >= ``threshold`` per image, in its pixels; images are resized to the
        network input with PIL (as :func:`multibox.inference.detect_images`) and run in batches."""
        threshold = self.display_threshold if threshold is None else threshold
        step = self.batch_size or 8
        results = []
        for start in range(0, len(images), step):
            chunk = images[start : start + step]
            boxes, scores, classes, count = self._run_any_batch(resize_for_network(chunk, self.data_shape))
            for i, image in enumerate(chunk):
                k = int(count[i])
                keep = scores[i, :k] >= threshold
                pixels = boxes_to_pixels(boxes[i, :k][keep], image.width, image.height)
                results.append(
                    {
                        "boxes": pixels.astype(np.float32),
                        "scores": scores[i, :k][keep].astype(np.float32),
                        "labels": classes[i, :k][keep].astype(np.int64),
                    }
                )
        return results


def _as_uint8_numpy(images: torch.Tensor | np.ndarray) -> np.ndarray:
    array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
    if array.ndim != 4 or array.shape[1] != 3:
        raise ValueError(f"images must be (N, 3, H, W), got shape {array.shape}")
    if array.dtype != np.uint8:
        array = np.clip(np.rint(array.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(array)
