"""Inception-v3 base network, built from torchvision's definition (its weights load unchanged).

SSD taps: ``Mixed_6e`` (768 ch, stride 16) and ``Mixed_7c`` (2048 ch, stride 32), also accepted under MXNet's
names ``ch_concat_mixed_7_chconcat`` / ``ch_concat_mixed_10_chconcat``. Inputs are scaled to [-1, 1] (what
torchvision's weights expect). Differences from MXNet's network: docs/model.md.
"""

from __future__ import annotations

from collections import OrderedDict

from torchvision.models import inception

from multibox.model.backbones.base import SequentialBackbone

_LAYERS = (
    "Conv2d_1a_3x3",
    "Conv2d_2a_3x3",
    "Conv2d_2b_3x3",
    "maxpool1",
    "Conv2d_3b_1x1",
    "Conv2d_4a_3x3",
    "maxpool2",
    "Mixed_5b",
    "Mixed_5c",
    "Mixed_5d",
    "Mixed_6a",
    "Mixed_6b",
    "Mixed_6c",
    "Mixed_6d",
    "Mixed_6e",
    "Mixed_7a",
    "Mixed_7b",
    "Mixed_7c",
)
_CHANNELS = (32, 32, 64, 64, 80, 192, 192, 256, 288, 288, 768, 768, 768, 768, 768, 1280, 2048, 2048)
_MXNET_MIXED = tuple(name for name in _LAYERS if name.startswith("Mixed"))


class InceptionV3(SequentialBackbone):
    """torchvision Inception-v3 without aux head, pooling and fc. Taps: every layer in ``_LAYERS``."""

    input_mean = (0.5, 0.5, 0.5)
    input_std = (0.5, 0.5, 0.5)

    def __init__(self) -> None:
        net = inception.Inception3(aux_logits=False, init_weights=False)
        super().__init__(OrderedDict((n, getattr(net, n)) for n in _LAYERS))
        self.out_channels = dict(zip(_LAYERS, _CHANNELS, strict=True))
        self.aliases = {}
        for i, name in enumerate(_MXNET_MIXED):
            mx = "mixed" if i == 0 else f"mixed_{i}"
            self.aliases[mx] = name
            self.aliases[f"ch_concat_{mx}_chconcat"] = name
