"""What every detector gives back, the interface it offers, and the one JSON form of its detections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from PIL import Image

Detections = dict[str, np.ndarray]
"""Per image: ``{"boxes" (K, 4) float32 pixels x1 y1 x2 y2, "scores" (K,) float32, "labels" (K,) int64}``,
highest score first; ``labels`` index :attr:`Detector.class_names`."""


@runtime_checkable
class Detector(Protocol):
    """Something that finds objects in RGB images."""

    class_names: list[str]

    display_threshold: float  # the score shown when none is asked for (the detector's tuned one)

    def predict(self, images: Sequence[Image.Image], threshold: float | None = None) -> list[Detections]:
        """Detections with score >= ``threshold`` (default: ``display_threshold``) for each image, in that
        image's pixel coordinates."""
        ...


def detections_to_json(detections: Detections, class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One image's detections, in their order, as the rows of ``multibox detect``'s ``detections.json`` and of
    ``multibox serve``'s answers: ``{"box": [x1, y1, x2, y2] pixels (2 decimals), "score" (4 decimals),
    "class_id", "class_name"}``."""
    rows = zip(detections["boxes"], detections["scores"], detections["labels"], strict=True)
    return [
        {
            "box": [round(float(v), 2) for v in box],
            "score": round(float(score), 4),
            "class_id": int(label),
            "class_name": class_names[int(label)],
        }
        for box, score, label in rows
    ]
