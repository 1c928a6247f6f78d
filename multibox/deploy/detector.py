"""One interface for every way of running a trained detector: a PyTorch checkpoint or an exported model file.

``multibox detect`` and ``multibox serve`` only talk to a :class:`Detector`; :func:`open_detector` picks the
implementation from the file (``.onnx`` -> ONNX Runtime, ``.torchscript``/``.ts`` -> TorchScript, anything else
-> a ``multibox train`` checkpoint).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multibox.deploy.detections import Detections, Detector

__all__ = ["Detections", "Detector", "TorchDetector", "open_detector"]


class TorchDetector:
    """A ``multibox train`` checkpoint run in PyTorch, decoding with the checkpoint's detection settings."""

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
