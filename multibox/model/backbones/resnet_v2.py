"""The original example's ResNet-50 / ResNet-101: pre-activation ResNet v2 (He et al. 2016, "Identity Mappings in
Deep Residual Networks"), tornadomeet style, module names as MXNet's ``symbol/resnet.py`` (spec §2.4).

``bn_data`` (BatchNorm of the mean-subtracted pixels, gamma fixed at 1) -> ``conv0`` 7x7/2 (no bias) -> ``bn0``
-> ReLU -> max-pool 3x3/2 pad 1 -> four stages of bottleneck units ``stageS_unitU``: BN-ReLU-1x1 (F/4) -
BN-ReLU-3x3 (F/4, the stage's stride in the first unit) - BN-ReLU-1x1 (F), plus the input, or in each stage's
first unit a 1x1 projection ``sc`` of the first BN-ReLU's output. BN eps 2e-5. No BN/ReLU after the sums: the
SSD taps ``_plus12`` / ``_plus15`` (ResNet-50; ``_plus29`` / ``_plus32`` for ResNet-101, MXNet's automatic names
of the additions) are the raw sums of the last units of stages 3 and 4.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn

from multibox.model.backbones.base import CAFFE_MEAN, PIXEL_STD, SequentialBackbone

_UNITS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3)}
_FILTERS = (256, 512, 1024, 2048)
_EPS = 2e-5


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=_EPS, momentum=0.1)  # MXNet momentum 0.9


class FixedGammaBatchNorm2d(nn.BatchNorm2d):
    """MXNet's ``BatchNorm(fix_gamma=True)``: the scale is held at 1; the stored ``weight`` (MXNet's ``gamma``,
    kept so the names match) is never used and does not train (``requires_grad`` False, so neither the
    optimiser nor DistributedDataParallel waits for a gradient it never gets)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(
            x, self.running_mean, self.running_var, None, self.bias, self.training, self.momentum, self.eps
        )


class PreActBottleneck(nn.Module):
    """One ``residual_unit`` (bottleneck): ``x + conv3(relu(bn3(conv2(relu(bn2(conv1(relu(bn1(x)))))))))``."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, project: bool) -> None:
        super().__init__()
        mid = out_ch // 4
        self.bn1 = _bn(in_ch)
        self.conv1 = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn2 = _bn(mid)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride, 1, bias=False)
        self.bn3 = _bn(mid)
        self.conv3 = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.sc = nn.Conv2d(in_ch, out_ch, 1, stride, bias=False) if project else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act1 = F.relu(self.bn1(x))
        out = self.conv1(act1)
        out = self.conv2(F.relu(self.bn2(out)))
        out = self.conv3(F.relu(self.bn3(out)))
        return out + (x if self.sc is None else self.sc(act1))


class ResNetV2(SequentialBackbone):
    """The original's pre-activation ResNet-{50,101} up to the last unit. Taps: ``pool0`` and every
    ``stageS_unitU`` (a residual sum), also under MXNet's ``_plusN`` names.

    Expects the original's input: RGB pixels in 0..255 minus the means (123, 117, 104); ``bn_data`` does the
    rest.
    """

    input_mean = CAFFE_MEAN
    input_std = PIXEL_STD

    def __init__(self, depth: int = 50) -> None:
        if depth not in _UNITS:
            raise ValueError(f"depth must be 50 or 101, got {depth}")
        layers: OrderedDict[str, nn.Module] = OrderedDict(
            bn_data=FixedGammaBatchNorm2d(3, eps=_EPS, momentum=0.1),
            conv0=nn.Conv2d(3, 64, 7, 2, 3, bias=False),
            bn0=_bn(64),
            relu0=nn.ReLU(inplace=True),
            pool0=nn.MaxPool2d(3, 2, 1),
        )
        channels = {"pool0": 64}
        aliases = {}
        in_ch, plus = 64, 0
        for stage, (units, out_ch) in enumerate(zip(_UNITS[depth], _FILTERS, strict=True), start=1):
            for unit in range(1, units + 1):
                name = f"stage{stage}_unit{unit}"
                stride = 2 if unit == 1 and stage > 1 else 1
                layers[name] = PreActBottleneck(in_ch, out_ch, stride, project=unit == 1)
                channels[name] = out_ch
                aliases[f"_plus{plus}"] = name
                in_ch, plus = out_ch, plus + 1
        super().__init__(layers)
        self.out_channels = channels
        self.aliases = aliases
