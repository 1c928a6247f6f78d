"""Image files -> detections: the one image reader of inference and the batched run of a PyTorch model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multibox.data.image_io import read_rgb
from multibox.inference.detections import Detections
from multibox.model.resize import boxes_to_pixels, resize_for_network


def read_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """An 8-bit RGB image as displayed (EXIF orientation applied), by :mod:`multibox.data.image_io`'s rules
    (pixel limit ``max_pixels``, default ``$MULTIBOX_MAX_MEGAPIXELS`` or 100 MP; 16-bit scaled; alpha dropped).

    Raises :class:`~multibox.data.image_io.ImageDecodeError` naming the file for anything it cannot decode.
    """
    return read_rgb(path, max_pixels=max_pixels, orient=True)


@torch.no_grad()
def detect_images(
    model: torch.nn.Module,
    images: Sequence[Image.Image],
    threshold: float = 0.5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    data_shape: tuple[int, int] | None = None,
    **detect_options,
) -> list[Detections]:
    """Detections per image in its own pixel coordinates: ``{"boxes" (K, 4), "scores" (K,), "labels" (K,)}``.

    Images are force-resized to the network input ``data_shape`` ``(h, w)`` (default: the model's, as in
    training); ``threshold`` is the minimum score.
    """
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = torch.from_numpy(resize_for_network(chunk, data_shape or model.data_shape)).to(device)
        detections = (
            model.detect(batch, **({"threshold": threshold} | detect_options)).cpu().numpy()
        )  # (B, K, 6)
        for image, det in zip(chunk, detections, strict=True):
            det = det[(det[:, 0] >= 0) & (det[:, 1] >= threshold)]
            results.append(
                {
                    "boxes": boxes_to_pixels(det[:, 2:6], image.width, image.height),
                    "scores": det[:, 1],
                    "labels": det[:, 0].astype(np.int64),
                }
            )
    return results
