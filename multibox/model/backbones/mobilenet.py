"""MobileNet base networks: v1 as zhreshold/mxnet-ssd's ``symbol/mobilenet.py``, v2/v3 from torchvision.

v1 layers are named as the MXNet symbol (``conv_1``, ``conv_2_dw``, ``conv_2``, ... ``conv_14``, each with
children ``conv2d`` / ``batchnorm`` / ``relu``); SSD taps ``conv_12_relu`` (512 ch, stride 16) and
``conv_14_relu`` (1024 ch, stride 32). torchvision has no v1, so its weights come only from a local file.

v2 / v3-large wrap torchvision's ``features`` (its ImageNet weights load unchanged). SSD taps, as SSDLite:
the expansion output of the first stride-32 block (``features.14.conv.0``, 576 ch, v2;
``features.13.block.0``, 672 ch, v3) and the last layer (``features.18``, 1280 ch; ``features.16``, 960 ch).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import torch
from torch import nn
from torchvision.models import mobilenet_v2, mobilenet_v3_large

from multibox.model.backbones.base import Backbone, SequentialBackbone

# (name, out channels, stride, depthwise) of MobileNet v1 after conv_1
_V1_LAYERS = (
    [
        ("conv_2", 64, 1),
        ("conv_3", 128, 2),
        ("conv_4", 128, 1),
        ("conv_5", 256, 2),
        ("conv_6", 256, 1),
        ("conv_7", 512, 2),
    ]
    + [(f"conv_{i}", 512, 1) for i in range(8, 13)]
    + [("conv_13", 1024, 2), ("conv_14", 1024, 1)]
)


def _conv_bn_relu(in_ch: int, out_ch: int, kernel: int, stride: int, groups: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv2d=nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
            batchnorm=nn.BatchNorm2d(out_ch),
            relu=nn.ReLU(inplace=True),
        )
    )


class MobileNetV1(SequentialBackbone):
    """MobileNet v1 (width 1.0). Taps: every ``conv_K`` / ``conv_K_dw`` (also spelled ``conv_K_relu``)."""

    def __init__(self) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict(conv_1=_conv_bn_relu(3, 32, 3, 2))
        channels = {"conv_1": 32}
        in_ch = 32
        for name, out_ch, stride in _V1_LAYERS:
            layers[f"{name}_dw"] = _conv_bn_relu(in_ch, in_ch, 3, stride, groups=in_ch)
            layers[name] = _conv_bn_relu(in_ch, out_ch, 1, 1)
            channels[f"{name}_dw"] = in_ch
            channels[name] = out_ch
            in_ch = out_ch
        super().__init__(layers)
        self.out_channels = channels
        self.aliases = {f"{n}_relu": n for n in channels}


class _TorchvisionMobileNet(Backbone):
    """Runs torchvision's ``features`` and also yields the expansion output of block ``split``."""

    def __init__(self, features: nn.Sequential, split: int, inner: str, channels: dict[str, int]) -> None:
        super().__init__()
        self.features = features
        block = features[split]
        if getattr(block, "use_res_connect", True):
            raise ValueError(f"features[{split}] has a residual connection; its expansion cannot be tapped")
        self._split = split
        self._inner = inner
        self.out_channels = channels

    def stages(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        for i, layer in enumerate(self.features):
            if i == self._split:
                for j, part in enumerate(getattr(layer, self._inner)):
                    x = part(x)
                    if j == 0:
                        yield f"features.{i}.{self._inner}.0", x
            else:
                x = layer(x)
            yield f"features.{i}", x


class MobileNetV2(_TorchvisionMobileNet):
    """torchvision MobileNet v2 ``features``; taps ``features.14.conv.0`` (576 ch), ``features.18`` (1280)."""

    def __init__(self) -> None:
        feats = mobilenet_v2().features
        channels = {f"features.{i}": _last_channels(m) for i, m in enumerate(feats)}
        channels["features.14.conv.0"] = 576
        super().__init__(feats, 14, "conv", channels)


class MobileNetV3Large(_TorchvisionMobileNet):
    """torchvision MobileNet v3-large ``features``; taps ``features.13.block.0``, ``features.16``.

    ``reduced_tail`` halves the channels of the stride-32 stage (``features.16``: 480), as torchvision's SSDLite.
    """

    def __init__(self, reduced_tail: bool = False) -> None:
        feats = mobilenet_v3_large(reduced_tail=reduced_tail).features
        channels = {f"features.{i}": _last_channels(m) for i, m in enumerate(feats)}
        channels["features.13.block.0"] = 672
        super().__init__(feats, 13, "block", channels)


class TorchvisionSSDLiteMobileNetV3(MobileNetV3Large):
    """The MobileNet v3-large of torchvision's ``ssdlite320_mobilenet_v3_large``: reduced tail, input in
    [-1, 1] (its ``image_mean`` and ``image_std`` 0.5)."""

    input_mean = (0.5, 0.5, 0.5)
    input_std = (0.5, 0.5, 0.5)

    def __init__(self) -> None:
        super().__init__(reduced_tail=True)


def _last_channels(module: nn.Module) -> int:
    """Output channels of a torchvision block: those of its last BatchNorm."""
    norms = [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]
    return norms[-1].num_features
