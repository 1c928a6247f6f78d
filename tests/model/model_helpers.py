"""Small networks for the model tests."""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from multibox.model import SSD
from multibox.model.backbones import SequentialBackbone


class TinyBackbone(SequentialBackbone):
    """Two stride-2 stages: ``s4`` (8 ch, stride 4) and ``s8`` (16 ch, stride 8)."""

    def __init__(self) -> None:
        super().__init__(
            OrderedDict(
                stem=nn.Conv2d(3, 8, 3, 2, 1),
                s4=nn.Sequential(nn.Conv2d(8, 8, 3, 2, 1), nn.ReLU()),
                s8=nn.Sequential(nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU()),
            )
        )
        self.out_channels = {"stem": 8, "s4": 8, "s8": 16}
        self.aliases = {"stride8": "s8"}


def tiny_ssd(num_classes: int = 3, **kwargs) -> SSD:
    """A 4-layer SSD on :class:`TinyBackbone`: maps 16, 8, 4, 2 at a 64x64 input (L2 norm on layer 0)."""
    torch.manual_seed(0)
    config = dict(
        from_layers=["s4", "stride8", "", ""],
        num_filters=[-1, -1, 32, 16],
        strides=[-1, -1, 2, 2],
        pads=[-1, -1, 1, 1],
        sizes=[[0.1, 0.15], [0.3, 0.4], [0.5, 0.6], [0.8, 0.9]],
        ratios=[[1, 2, 0.5], [1, 2, 0.5, 3, 1 / 3], [1, 2], [1]],
        normalizations=[20, -1, -1, -1],
        steps=[],
        min_filter=8,
        num_classes=num_classes,
        data_shape=64,
    )
    config.update(kwargs)
    return SSD(TinyBackbone(), **config)
