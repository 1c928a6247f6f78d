"""The one resize from an image to the network input, used by every door (SSD.predict, the detectors, the
exported runners): Pillow's bilinear filter, as the validation loader resizes."""

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


def tensor_to_image(image: torch.Tensor) -> Image.Image:
    """A ``(3, H, W)`` uint8 tensor, or floats in 0..1 (rounded to 8 bits), as an RGB PIL image."""
    if image.dtype != torch.uint8:
        image = (image.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return Image.fromarray(image.cpu().permute(1, 2, 0).contiguous().numpy(), "RGB")
