"""Multi-scale training: every batch resized to a size drawn from a list (``multi_scale=[256, 320, 384]``).

Labels are normalised corners, so they hold at any size; the SSD builds (and caches) anchors for every input
size it meets. The draw depends only on the seed and the step, so every rank of a distributed run resizes to
the same size and a resumed run continues the same sequence. Evaluation stays at ``data_shape``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
import torch.nn.functional as F

from multibox.engine.trainer import HookBase


def resize_batch(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 (or float) images ``(B, 3, H, W)`` -> ``(B, 3, size, size)`` of the same dtype, bilinear
    (antialiased when shrinking)."""
    if tuple(images.shape[-2:]) == (size, size):
        return images
    shrinking = size < max(images.shape[-2:])
    resized = F.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking
    )
    if images.dtype == torch.uint8:
        return resized.round_().clamp_(0, 255).to(torch.uint8)
    return resized.to(images.dtype)


class MultiScale(HookBase):
    """Resizes every training batch to ``sizes[k]``, ``k`` drawn from ``(seed, step)``."""

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        self.sizes, self.seed = [int(s) for s in sizes], seed

    def size_at(self, step: int) -> int:
        return random.Random(self.seed * 1_000_003 + step).choice(self.sizes)

    def before_step(self) -> None:
        batch = self.trainer.batch
        batch.images = resize_batch(batch.images, self.size_at(self.trainer.step))
