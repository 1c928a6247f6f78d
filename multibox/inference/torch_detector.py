"""The :class:`Detector` of a ``multibox train`` checkpoint, run in PyTorch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multibox.inference.checkpoint_model import load_detector
from multibox.inference.detections import Detections
from multibox.inference.images import detect_images


class TorchDetector:
    """A ``multibox train`` checkpoint run in PyTorch, decoding with the checkpoint's detection settings."""

    def __init__(
        self, checkpoint: str | Path, device: str | torch.device = "cpu", batch_size: int = 8
    ) -> None:
        self.model, self.class_names = load_detector(checkpoint, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    @property
    def display_threshold(self) -> float:
        """The checkpoint's score threshold for showing detections (tuned on validation by training)."""
        return self.model.detection.display_threshold

    def predict(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Detections]:
        threshold = self.display_threshold if threshold is None else threshold
        results = detect_images(
            self.model, images, threshold=threshold, batch_size=self.batch_size, device=self.device
        )
        return [_sorted_by_score(r) for r in results]


def _sorted_by_score(result: Detections) -> Detections:
    order = np.argsort(-result["scores"], kind="stable")
    return {
        "boxes": result["boxes"][order].astype(np.float32),
        "scores": result["scores"][order].astype(np.float32),
        "labels": result["labels"][order].astype(np.int64),
    }
