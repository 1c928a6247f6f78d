"""What every detector gives back and the interface it offers (the runners import this, not each other)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np
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
