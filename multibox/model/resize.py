"""The one resize from an image to the network input, used by every door (SSD.predict, the detectors, the
exported runners): Pillow's bilinear filter, as the validation loader resizes; and the one way back, from
normalised boxes to the image's pixels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image


def resize_for_network(images: Sequence[Image.Image], data_shape: tuple[int, int]) -> np.ndarray:
    """``(N, 3, H, W)`` uint8: each image made RGB and force-resized to ``data_shape`` ``(H, W)``."""
    height, width = data_shape
    resized = [
        np.asarray((im if im.mode == "RGB" else im.convert("RGB")).resize((width, height), Image.BILINEAR))
        for im in images
    ]
    return np.ascontiguousarray(np.stack(resized).transpose(0, 3, 1, 2))


def boxes_to_pixels(boxes: np.ndarray | torch.Tensor, width: int, height: int) -> np.ndarray | torch.Tensor:
    """``(K, 4)`` normalised corners ``x1 y1 x2 y2`` -> pixels of a ``width x height`` image, as the same type
    and dtype (a force-resize scales each axis on its own, so this undoes :func:`resize_for_network`)."""
    scale = [width, height, width, height]
    if isinstance(boxes, torch.Tensor):
        return boxes * boxes.new_tensor(scale)
    return boxes * np.array(scale, dtype=boxes.dtype)


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """A ``(3, H, W)`` uint8 tensor, or floats in 0..1 (rounded to 8 bits), as an RGB PIL image."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(image.cpu().permute(1, 2, 0).contiguous().numpy(), "RGB")
