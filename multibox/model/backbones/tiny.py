"""``tiny``: a small VGG-style network with batch norm, for CPU training in minutes (the quick start).

Five stages of 3x3 conv + BN + ReLU, each halving the resolution: ``stage1`` (16 ch, stride 2) ..
``stage5`` (192 ch, stride 32). About 0.6 M parameters; no pretrained weights.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from multibox.model.backbones.base import SequentialBackbone

# (name, channels, convs); the first conv of each stage has stride 2
_STAGES = (("stage1", 16, 1), ("stage2", 32, 1), ("stage3", 64, 2), ("stage4", 128, 2), ("stage5", 192, 1))


def _conv_bn(in_ch: int, out_ch: int, stride: int) -> list[nn.Module]:
    return [nn.Conv2d(in_ch, out_ch, 3, stride, 1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class TinyNet(SequentialBackbone):
    """Taps ``stage1`` .. ``stage5`` (strides 2, 4, 8, 16, 32)."""

    input_mean = (0.5, 0.5, 0.5)
    input_std = (0.25, 0.25, 0.25)

    def __init__(self) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        in_ch = 3
        for name, out_ch, convs in _STAGES:
            modules = _conv_bn(in_ch, out_ch, 2)
            for _ in range(convs - 1):
                modules += _conv_bn(out_ch, out_ch, 1)
            layers[name] = nn.Sequential(*modules)
            in_ch = out_ch
        super().__init__(layers)
        self.out_channels = {name: ch for name, ch, _ in _STAGES}
