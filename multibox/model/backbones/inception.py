"""Inception-v3 base network, built from torchvision's definition (its weights load unchanged).

MXNet's model-zoo names map onto torchvision's: ``mixed``..``mixed_2`` = Mixed_5b..5d, ``mixed_3`` = Mixed_6a,
``mixed_4``..``mixed_7`` = Mixed_6b..6e, ``mixed_8`` = Mixed_7a, ``mixed_9``/``mixed_10`` = Mixed_7b/7c.
The SSD taps ``ch_concat_mixed_7_chconcat`` (768 ch, stride 16) and ``ch_concat_mixed_10_chconcat``
(2048 ch, stride 32) are therefore ``Mixed_6e`` and ``Mixed_7c``; both spellings are accepted.

Both networks use unpadded stride-2 stem convolutions and pools, so the map sizes agree with spec §2.3
(30x30 and 14x14 at 512, 17 and 8 at 300) without any padding change. Remaining differences: MXNet's
``mixed_10`` uses max pooling in its pool branch (torchvision: average), and MXNet's BN has
``fix_gamma=True``; neither changes shapes. torchvision's ImageNet weights expect inputs scaled to
[-1, 1] (its ``transform_input``), which ``input_mean`` / ``input_std`` express.
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
