"""The network table: one :class:`NetworkSpec` per network name (backbone, prediction layers, weights, freeze).

``build_ssd``, the backbone-weights loader, the training setup and the configuration checks all read this
table. Adding a network is one backbone file plus one :func:`register_network` entry at the end of this module.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import numpy as np

from multibox.model.backbones import (
    Backbone,
    EfficientNetLite0,
    InceptionV3,
    MobileNetV1,
    MobileNetV2,
    MobileNetV3Large,
    ResNet,
    TinyNet,
    TorchvisionSSDLiteMobileNetV3,
    TorchvisionVGG16,
    VGG16Reduced,
)
from multibox.model.backbones.inception_mxnet import MXNetInceptionV3
from multibox.model.backbones.resnet_v2 import ResNetV2

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SSDLayout:
    """The prediction layers of a network: the :class:`~multibox.model.ssd.SSD` arguments, one entry per layer.

    Attributes:
        from_layers: backbone tap names; ``""`` appends an extra block to the previous layer.
        num_filters, strides, pads: of each extra block's 3x3 conv (-1 for taps).
        sizes: anchor sizes per layer (fractions of the image); ratios: aspect ratios per layer.
        normalizations: L2-norm scale init per layer (-1 = none), or one number for all.
        steps: explicit anchor steps (image fractions), used only at ``data_shape == steps_shape``;
            automatic (``1/H``, ``1/W``) at any other input size.
        min_filter: lower bound of an extra block's 1x1 filters.
        depthwise: SSDLite extras and heads.
        anchor_style: ``"mxnet"`` (MultiBoxPrior) or ``"torchvision"`` (DefaultBoxGenerator), see ``SSD``.
    """

    from_layers: tuple[str, ...]
    num_filters: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    sizes: tuple[tuple[float, ...], ...]
    ratios: tuple[tuple[float, ...], ...]
    normalizations: float | tuple[float, ...] = -1
    steps: tuple[float, ...] = ()
    steps_shape: int | None = None
    min_filter: int = 128
    depthwise: bool = False
    anchor_style: str = "mxnet"

    def ssd_arguments(self, data_shape: int) -> dict:
        """A fresh dict of SSD keyword arguments (lists) for a square input of ``data_shape``."""
        normalizations = self.normalizations
        return {
            "from_layers": list(self.from_layers),
            "num_filters": list(self.num_filters),
            "strides": list(self.strides),
            "pads": list(self.pads),
            "sizes": [list(s) for s in self.sizes],
            "ratios": [list(r) for r in self.ratios],
            "normalizations": list(normalizations)
            if isinstance(normalizations, Sequence)
            else normalizations,
            "steps": list(self.steps) if self.steps and data_shape == self.steps_shape else [],
            "min_filter": self.min_filter,
            "depthwise": self.depthwise,
            "anchor_style": self.anchor_style,
        }


@dataclass(frozen=True)
class NetworkSpec:
    """Everything a network name stands for.

    Attributes:
        name: what ``build_ssd``, ``network=`` and ``multibox inspect model`` call it.
        backbone: builds a freshly initialised base network.
        layout: its prediction layers.
        large_layout: the layout from ``data_shape >= large_from`` on (vgg16_reduced: the SSD512 table).
        large_from: the input size from which ``large_layout`` is used.
        tested_shapes: input sizes the original was tested at; others log a warning (empty: no warning).
        torchvision_weights: the torchvision weights enum of the backbone (``"ResNet50_Weights"``), if any.
        freeze: the parameters ``freeze="default"`` freezes in training (a regex, anchored), if any.
    """

    name: str
    backbone: Callable[[], Backbone]
    layout: SSDLayout
    large_layout: SSDLayout | None = None
    large_from: int = 448
    tested_shapes: tuple[int, ...] = ()
    torchvision_weights: str | None = None
    freeze: str | None = None

    def layout_for(self, data_shape: int = 300) -> SSDLayout:
        if self.tested_shapes and data_shape not in self.tested_shapes:
            logger.warning(
                "%s: data_shape %d was not tested by the original, use with caution", self.name, data_shape
            )
        if self.large_layout is not None and data_shape >= self.large_from:
            return self.large_layout
        return self.layout


_NETWORKS: dict[str, NetworkSpec] = {}


def register_network(spec: NetworkSpec) -> None:
    """Add (or replace) a network in the table."""
    _NETWORKS[spec.name] = spec


def network_names() -> tuple[str, ...]:
    """The registered network names, in table order."""
    return tuple(_NETWORKS)


def network_spec(name: str) -> NetworkSpec:
    """The spec of network ``name``; a ``KeyError`` listing the choices for an unknown one."""
    if name not in _NETWORKS:
        raise KeyError(f"unknown network {name!r}; choose from {', '.join(_NETWORKS)}")
    return _NETWORKS[name]


def preset(network: str, data_shape: int = 300) -> dict:
    """A fresh dict of the SSD arguments of ``network`` for a square input of ``data_shape``."""
    return network_spec(network).layout_for(data_shape).ssd_arguments(data_shape)


def build_backbone(name: str) -> Backbone:
    """A freshly initialised base network of network ``name``."""
    return network_spec(name).backbone()


def get_scales(min_scale: float = 0.2, max_scale: float = 0.9, num_layers: int = 6) -> list[list[float]]:
    """zhreshold/mxnet-ssd's ``get_scales`` (caffe ``ssd_pascal.py``): ``[[min_k, sqrt(min_k max_k)]]``.

    The first layer gets ``int(100 * min_scale / 2) / 100`` and ``min_scale``; the rest step evenly in whole
    percents. The geometric mean is rounded to float32 as the original's ``np.single``.
    """
    min_ratio, max_ratio = int(min_scale * 100), int(max_scale * 100)
    step = int(math.floor((max_ratio - min_ratio) / (num_layers - 2)))
    min_sizes = [int(100 * min_scale / 2.0) / 100.0] + [
        r / 100.0 for r in range(min_ratio, max_ratio + 1, step)
    ]
    max_sizes = [min_scale] + [(r + step) / 100.0 for r in range(min_ratio, max_ratio + 1, step)]
    return [[min_sizes[k], float(np.single(np.sqrt(min_sizes[k] * max_sizes[k])))] for k in range(num_layers)]


def default_box_scales(min_ratio: float, max_ratio: float, num_layers: int) -> tuple[float, ...]:
    """torchvision ``DefaultBoxGenerator``'s scales without explicit ones: ``num_layers`` evenly from
    ``min_ratio`` to ``max_ratio``, then 1 (computed as torchvision does, so the floats are the same)."""
    span = max_ratio - min_ratio
    return (*(min_ratio + span * k / (num_layers - 1.0) for k in range(num_layers)), 1.0)


def torchvision_sizes(scales: Sequence[float]) -> tuple[tuple[float, float], ...]:
    """Per-layer ``sizes`` of torchvision's scales ``s_0 .. s_L``: ``(s_k, sqrt(s_k s_k+1))``."""
    return tuple((s, math.sqrt(s * t)) for s, t in zip(scales[:-1], scales[1:], strict=True))


# ---------------------------------------------------------------------------------------------- the layouts
# apache/mxnet 1.9.1 vgg16_reduced (< 448), resnet and inceptionv3 sizes and ratios
SIZES_6 = ((0.1, 0.141), (0.2, 0.272), (0.37, 0.447), (0.54, 0.619), (0.71, 0.79), (0.88, 0.961))
_R3, _R5 = (1, 2, 0.5), (1, 2, 0.5, 3, 1.0 / 3)
RATIOS_6 = (_R3, _R5, _R5, _R5, _R3, _R3)
RATIOS_7 = (_R3, _R5, _R5, _R5, _R5, _R3, _R3)


def _layout(
    taps: Sequence[str], extras: Sequence[tuple[int, int, int]], tap_filters: Sequence[int] = (), **fields
) -> SSDLayout:
    """A layout of backbone ``taps`` followed by ``extras`` ``(filters, stride, pad)`` blocks; ``tap_filters``
    sets ``num_filters`` of the first taps (the original sizes VGG's L2-norm scale from it)."""
    filters = list(tap_filters) + [-1] * (len(taps) - len(tap_filters))
    return SSDLayout(
        from_layers=(*taps, *[""] * len(extras)),
        num_filters=(*filters, *(f for f, _, _ in extras)),
        strides=(*[-1] * len(taps), *(s for _, s, _ in extras)),
        pads=(*[-1] * len(taps), *(p for _, _, p in extras)),
        **fields,
    )


_VGG_TAPS = ("relu4_3", "relu7")
_VGG300 = _layout(
    _VGG_TAPS,
    [(512, 2, 1), (256, 2, 1), (256, 1, 0), (256, 1, 0)],
    tap_filters=[512],
    sizes=SIZES_6,
    ratios=RATIOS_6,
    normalizations=(20, -1, -1, -1, -1, -1),
    steps=tuple(s / 300.0 for s in (8, 16, 32, 64, 100, 300)),
    steps_shape=300,
)
_VGG512_FIELDS = {
    "tap_filters": [512],
    "sizes": (
        (0.07, 0.1025),
        (0.15, 0.2121),
        (0.3, 0.3674),
        (0.45, 0.5196),
        (0.6, 0.6708),
        (0.75, 0.8216),
        (0.9, 0.9721),
    ),
    "ratios": RATIOS_7,
    "normalizations": (20, -1, -1, -1, -1, -1, -1),
    "steps": tuple(s / 512.0 for s in (8, 16, 32, 64, 128, 256, 512)),
    "steps_shape": 512,
}
_VGG512 = _layout(
    _VGG_TAPS, [(512, 2, 1), (256, 2, 1), (256, 2, 1), (256, 2, 1), (256, 1, 1)], **_VGG512_FIELDS
)
# caffe SSD512 (paper): the last extra maps 2x2 -> 1x1 (24564 anchors at 512 instead of 24576)
_VGG512_PAPER = _layout(
    _VGG_TAPS, [(512, 2, 1), (256, 2, 1), (256, 2, 1), (256, 2, 1), (256, 2, 1)], **_VGG512_FIELDS
)
# torchvision's ssd300_vgg16: the same VGG, extras and steps, its DefaultBoxGenerator scales (two sizes per
# layer: s_k and sqrt(s_k s_k+1)) and aspect ratios ([2] -> 1, 2, 1/2; [2, 3] -> 1, 2, 1/2, 3, 1/3)
TORCHVISION_SSD300_SCALES = (0.07, 0.15, 0.33, 0.51, 0.69, 0.87, 1.05)
_TORCHVISION_SSD300 = dataclasses.replace(
    _VGG300,
    sizes=torchvision_sizes(TORCHVISION_SSD300_SCALES),
    anchor_style="torchvision",
)
_FOUR_EXTRAS = [(512, 2, 1), (256, 2, 1), (256, 2, 1), (128, 2, 1)]
_SIX = {"sizes": SIZES_6, "ratios": RATIOS_6}


def _six(taps: Sequence[str], depthwise: bool = False) -> SSDLayout:
    """Two taps, four extras, the 6-layer sizes and ratios (resnet, inception and the light presets)."""
    return _layout(taps, _FOUR_EXTRAS, depthwise=depthwise, **_SIX)


# ---------------------------------------------------------------------------------------------- the networks
# The original freezes VGG's conv1_x and conv2_x (``--freeze '^(conv1_|conv2_).*'``).
_VGG_FREEZE = r"^backbone\.(conv1_|conv2_)"
# ImageNet's stem and first three blocks of EfficientNet-Lite0 (the 160x160 and 80x80 maps): frozen, a training
# step skips their backward pass, 1.5-1.9x the images per second on a CPU (docs/benchmarks.md)
_LITE0_FREEZE = r"^backbone\._(conv_stem|bn0|blocks\.[0-2]\.)"
_VGG = {"tested_shapes": (300, 512), "torchvision_weights": "VGG16_Weights", "freeze": _VGG_FREEZE}

register_network(NetworkSpec("vgg16_reduced", VGG16Reduced, _VGG300, large_layout=_VGG512, **_VGG))
register_network(
    NetworkSpec("vgg16_reduced_paper", VGG16Reduced, _VGG300, large_layout=_VGG512_PAPER, **_VGG)
)
# a BatchNorm after each conv (torchvision's vgg16_bn): trains from random weights; ONNX export folds them away
register_network(
    NetworkSpec(
        "vgg16_reduced_bn",
        partial(VGG16Reduced, batch_norm=True),
        _VGG300,
        large_layout=_VGG512,
        tested_shapes=(300, 512),
        torchvision_weights="VGG16_BN_Weights",
        freeze=r"^backbone\.(conv1_|conv2_|bn1_|bn2_)",
    )
)
# torchvision's SSD300 (an imported COCO_V1 checkpoint, multibox.model.import_torchvision); torchvision
# freezes conv1_x by default (trainable_backbone_layers=4)
register_network(
    NetworkSpec(
        "torchvision_ssd300_vgg16",
        TorchvisionVGG16,
        _TORCHVISION_SSD300,
        tested_shapes=(300,),
        freeze=r"^backbone\.conv1_",
    )
)
register_network(
    NetworkSpec(
        "resnet50",
        partial(ResNet, 50),
        _six(["_plus12", "_plus15"]),
        torchvision_weights="ResNet50_Weights",
    )
)
register_network(
    NetworkSpec(
        "resnet101",
        partial(ResNet, 101),
        _six(["_plus29", "_plus32"]),
        torchvision_weights="ResNet101_Weights",
    )
)
# the original's own ResNets: pre-activation v2, taps the raw residual sums (multibox.model.import_mxnet)
register_network(NetworkSpec("resnet50_v2", partial(ResNetV2, 50), _six(["_plus12", "_plus15"])))
register_network(NetworkSpec("resnet101_v2", partial(ResNetV2, 101), _six(["_plus29", "_plus32"])))
register_network(
    NetworkSpec(
        "inceptionv3",
        InceptionV3,
        _six(["ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat"]),
        torchvision_weights="Inception_V3_Weights",
    )
)
# the original's own Inception-v3: BN scales held at 1, a max-pooled mixed_10 (multibox.model.import_mxnet)
register_network(
    NetworkSpec(
        "inceptionv3_mxnet",
        MXNetInceptionV3,
        _six(["ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat"]),
    )
)
register_network(
    NetworkSpec(
        "mobilenet",
        MobileNetV1,
        _layout(
            ["conv_12_relu", "conv_14_relu"],
            [(512, 2, 1), (256, 2, 1), (256, 2, 1), (256, 2, 1), (256, 2, 1)],
            sizes=tuple(tuple(s) for s in get_scales(0.15, 0.9, 7)),
            ratios=RATIOS_7,
        ),
    )
)
# SSDLite-style light networks: depthwise extras and heads by default (depthwise=False gives plain SSD)
register_network(
    NetworkSpec(
        "mobilenet_v2",
        MobileNetV2,
        _six(["features.14.conv.0", "features.18"], depthwise=True),
        torchvision_weights="MobileNet_V2_Weights",
    )
)
register_network(
    NetworkSpec(
        "mobilenet_v3_large",
        MobileNetV3Large,
        _six(["features.13.block.0", "features.16"], depthwise=True),
        torchvision_weights="MobileNet_V3_Large_Weights",
    )
)
# torchvision's SSDLite320 (an imported COCO_V1 checkpoint): reduced-tail v3, extras of out // 2 mid channels,
# DefaultBoxGenerator([[2, 3]] * 6, min_ratio=0.2, max_ratio=0.95) with automatic steps
register_network(
    NetworkSpec(
        "torchvision_ssdlite320_mobilenet_v3_large",
        TorchvisionSSDLiteMobileNetV3,
        _layout(
            ["features.13.block.0", "features.16"],
            _FOUR_EXTRAS,
            sizes=torchvision_sizes(default_box_scales(0.2, 0.95, 6)),
            ratios=(_R5,) * 6,
            min_filter=64,
            depthwise=True,
            anchor_style="torchvision",
        ),
        tested_shapes=(320,),
    )
)
register_network(
    NetworkSpec(
        "efficientnet_lite0",
        EfficientNetLite0,
        _six(["blocks.11.expand", "head"], depthwise=True),
        freeze=_LITE0_FREEZE,
    )
)
# small and fast on a CPU: the quick start's network (maps 16, 8, 4, 2, 1 at 128x128)
register_network(
    NetworkSpec(
        "tiny",
        TinyNet,
        _layout(
            ["stage3", "stage4"],
            [(128, 2, 1), (128, 2, 1), (128, 2, 1)],
            sizes=((0.1, 0.16), (0.25, 0.33), (0.45, 0.55), (0.65, 0.75), (0.85, 0.95)),
            ratios=((1, 2, 0.5),) * 5,
            min_filter=64,
        ),
    )
)
