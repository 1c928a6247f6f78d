"""ResNet-50 / ResNet-101 base networks, built from torchvision's definitions (its weights load unchanged).

SSD taps: ``layer3`` (1024 ch, stride 16) and ``layer4`` (2048 ch, stride 32), also accepted under the MXNet
example's names ``_plus12`` / ``_plus15`` (ResNet-50) and ``_plus29`` / ``_plus32`` (ResNet-101). Why these are
post-activation outputs rather than the original's raw residual sums: docs/model.md.
"""

from __future__ import annotations

from collections import OrderedDict

from torchvision.models import resnet

from multibox.model.backbones.base import SequentialBackbone

_ORIGINAL_TAPS = {50: ("_plus12", "_plus15"), 101: ("_plus29", "_plus32")}


class ResNet(SequentialBackbone):
    """torchvision ResNet-{50,101} without avgpool/fc. Taps: ``relu`` ``maxpool`` ``layer1`` .. ``layer4``."""

    def __init__(self, depth: int = 50) -> None:
        if depth not in _ORIGINAL_TAPS:
            raise ValueError(f"depth must be 50 or 101, got {depth}")
        net = resnet.resnet50() if depth == 50 else resnet.resnet101()
        names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")
        super().__init__(OrderedDict((n, getattr(net, n)) for n in names))
        self.out_channels = {
            "relu": 64,
            "maxpool": 64,
            "layer1": 256,
            "layer2": 512,
            "layer3": 1024,
            "layer4": 2048,
        }
        plus3, plus4 = _ORIGINAL_TAPS[depth]
        self.aliases = {plus3: "layer3", plus4: "layer4"}
