"""One interface for every way of running a trained detector: a PyTorch checkpoint or an exported model file.

``multibox detect`` and ``multibox serve`` only talk to a :class:`Detector`; :func:`open_detector` picks the
implementation from the file (``.onnx`` -> ONNX Runtime, ``.torchscript``/``.ts`` -> TorchScript, anything else
-> a ``multibox train`` checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import torch
from PIL import Image

Detections = dict[str, np.ndarray]
"""Per image: ``{"boxes" (K, 4) float32 pixels x1 y1 x2 y2, "scores" (K,) float32, "labels" (K,) int64}``,
highest score first; ``labels`` index :attr:`Detector.class_names`."""


@runtime_checkable
class Detector(Protocol):
    """Something that finds objects in RGB images."""

    class_names: list[str]

    def predict(self, images: Sequence[Image.Image], threshold: float = 0.5) -> list[Detections]:
        """Detections with score >= ``threshold`` for each image, in that image's pixel coordinates."""
        ...


class TorchDetector:
    """A ``multibox train`` checkpoint run in PyTorch (per-class decoding, as evaluation uses)."""

    def __init__(
        self, checkpoint: str | Path, device: str | torch.device = "cpu", batch_size: int = 8
    ) -> None:
        from multibox.engine.inference import load_detector

        self.model, self.class_names = load_detector(checkpoint, device)
        self.device = torch.device(device)
        self.batch_size = batch_size

    def predict(self, images: Sequence[Image.Image], threshold: float = 0.5) -> list[Detections]:
        from multibox.engine.inference import detect_images

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


def open_detector(path: str | Path, device: str | torch.device = "cpu") -> Detector:
    """The detector stored in ``path``: an exported ``.onnx`` file or a training checkpoint."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    if path.suffix.lower() == ".onnx":
        from multibox.deploy.onnx_detector import OnnxDetector

        return OnnxDetector(path)
    if path.suffix.lower() in (".torchscript", ".ts"):
        from multibox.deploy.torchscript_detector import TorchScriptDetector

        return TorchScriptDetector(path, device)
    return TorchDetector(path, device)
