"""The :class:`Detector` of a ``multibox train`` checkpoint, run in PyTorch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from multibox.inference.checkpoint_model import load_detector
from multibox.inference.detections import Detections
from multibox.inference.images import detect_images
from multibox.model.detection_settings import DetectionSettings


class TorchDetector:
    """A ``multibox train`` checkpoint run in PyTorch, decoding with the checkpoint's detection settings.

    Args:
        data_shape: network input ``(h, w)`` (or one side) instead of the checkpoint's; the SSD's anchors
            follow the size (a :class:`~multibox.errors.ConfigError` for one too small for the network).
        settings: :class:`DetectionSettings` fields replacing the checkpoint's (``None`` values keep its own),
            e.g. ``{"nms_threshold": 0.3, "force_suppress": True}``.
    """

    def __init__(
        self,
        checkpoint: str | Path,
        device: str | torch.device = "cpu",
        batch_size: int = 8,
        data_shape: int | tuple[int, int] | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> None:
        self.model, self.class_names = load_detector(checkpoint, device)
        self.model.detection = self.model.detection.updated(**dict(settings or {}))
        if isinstance(data_shape, int):
            data_shape = (data_shape, data_shape)
        self.data_shape = tuple(int(s) for s in data_shape) if data_shape else self.model.data_shape
        self.model.anchors_for(*self.data_shape)  # refuses a size the network cannot take, before any image
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    def detection(self) -> DetectionSettings:
        """The decoding settings in use (the checkpoint's, with the ``settings`` given)."""
        return self.model.detection

    @property
    def display_threshold(self) -> float:
        """The checkpoint's score threshold for showing detections (tuned on validation by training)."""
        return self.model.detection.display_threshold

    def predict(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Detections]:
        threshold = self.display_threshold if threshold is None else threshold
        results = detect_images(
            self.model,
            images,
            threshold=threshold,
            batch_size=self.batch_size,
            device=self.device,
            data_shape=self.data_shape,
        )
        return [_sorted_by_score(r) for r in results]


def _sorted_by_score(result: Detections) -> Detections:
    order = np.argsort(-result["scores"], kind="stable")
    return {
        "boxes": result["boxes"][order].astype(np.float32),
        "scores": result["scores"][order].astype(np.float32),
        "labels": result["labels"][order].astype(np.int64),
    }
