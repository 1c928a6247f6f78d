"""The network table: MXNet's ``symbol_factory.get_config`` (spec §2) plus modern light presets.

Each preset is a dict of :class:`~multibox.model.ssd.SSD` arguments (``from_layers``, ``num_filters``,
``strides``, ``pads``, ``sizes``, ``ratios``, ``normalizations``, ``steps``, plus keyword options such as
``depthwise``) and the name of its ``backbone``. :func:`preset` returns a fresh copy for a data shape.
"""

from __future__ import annotations

import copy
import logging
import math

import numpy as np

logger = logging.getLogger(__name__)

# apache/mxnet 1.9.1 vgg16_reduced (< 448), resnet and inceptionv3 sizes and ratios
SIZES_6 = [[0.1, 0.141], [0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]]
RATIOS_6 = [
    [1, 2, 0.5],
    [1, 2, 0.5, 3, 1.0 / 3],
    [1, 2, 0.5, 3, 1.0 / 3],
    [1, 2, 0.5, 3, 1.0 / 3],
    [1, 2, 0.5],
    [1, 2, 0.5],
]
RATIOS_7 = [[1, 2, 0.5]] + [[1, 2, 0.5, 3, 1.0 / 3]] * 4 + [[1, 2, 0.5]] * 2


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


def _extras(taps: list[str], filters: list[int], strides: list[int], pads: list[int]) -> dict:
    n = len(taps)
    return {
        "from_layers": taps + [""] * len(filters),
        "num_filters": [-1] * n + filters,
        "strides": [-1] * n + strides,
        "pads": [-1] * n + pads,
    }


_VGG300 = {
    "backbone": "vgg16_reduced",
    **_extras(["relu4_3", "relu7"], [512, 256, 256, 256], [2, 2, 1, 1], [1, 1, 0, 0]),
    "sizes": SIZES_6,
    "ratios": RATIOS_6,
    "normalizations": [20, -1, -1, -1, -1, -1],
}
_VGG300["num_filters"][0] = 512
_VGG512 = {
    "backbone": "vgg16_reduced",
    **_extras(["relu4_3", "relu7"], [512, 256, 256, 256, 256], [2, 2, 2, 2, 1], [1, 1, 1, 1, 1]),
    "sizes": [
        [0.07, 0.1025],
        [0.15, 0.2121],
        [0.3, 0.3674],
        [0.45, 0.5196],
        [0.6, 0.6708],
        [0.75, 0.8216],
        [0.9, 0.9721],
    ],
    "ratios": RATIOS_7,
    "normalizations": [20, -1, -1, -1, -1, -1, -1],
}
_VGG512["num_filters"][0] = 512
# caffe SSD512 (paper): the last extra maps 2x2 -> 1x1 (24564 anchors at 512 instead of 24576)
_VGG512_PAPER = copy.deepcopy(_VGG512)
_VGG512_PAPER["strides"][-1] = 2

_SIX = {"sizes": SIZES_6, "ratios": RATIOS_6, "normalizations": -1}
_FOUR_EXTRAS = ([512, 256, 256, 128], [2, 2, 2, 2], [1, 1, 1, 1])

PRESETS: dict[str, dict] = {
    "resnet50": {"backbone": "resnet50", **_extras(["_plus12", "_plus15"], *_FOUR_EXTRAS), **_SIX},
    "resnet101": {"backbone": "resnet101", **_extras(["_plus29", "_plus32"], *_FOUR_EXTRAS), **_SIX},
    "inceptionv3": {
        "backbone": "inceptionv3",
        **_extras(["ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat"], *_FOUR_EXTRAS),
        **_SIX,
    },
    "mobilenet": {
        "backbone": "mobilenet",
        **_extras(["conv_12_relu", "conv_14_relu"], [512, 256, 256, 256, 256], [2] * 5, [1] * 5),
        "sizes": get_scales(0.15, 0.9, 7),
        "ratios": RATIOS_7,
        "normalizations": -1,
    },
    # SSDLite-style light presets (depthwise extras and heads by default; pass depthwise=False for plain SSD)
    "mobilenet_v2": {
        "backbone": "mobilenet_v2",
        **_extras(["features.14.conv.0", "features.18"], *_FOUR_EXTRAS),
        **_SIX,
        "depthwise": True,
    },
    "mobilenet_v3_large": {
        "backbone": "mobilenet_v3_large",
        **_extras(["features.13.block.0", "features.16"], *_FOUR_EXTRAS),
        **_SIX,
        "depthwise": True,
    },
    "efficientnet_lite0": {
        "backbone": "efficientnet_lite0",
        **_extras(["blocks.11.expand", "head"], *_FOUR_EXTRAS),
        **_SIX,
        "depthwise": True,
    },
    # small and fast on a CPU: the quick start's network (maps 16, 8, 4, 2, 1 at 128x128)
    "tiny": {
        "backbone": "tiny",
        **_extras(["stage3", "stage4"], [128, 128, 128], [2, 2, 2], [1, 1, 1]),
        "sizes": [[0.1, 0.16], [0.25, 0.33], [0.45, 0.55], [0.65, 0.75], [0.85, 0.95]],
        "ratios": [[1, 2, 0.5]] * 5,
        "normalizations": -1,
        "min_filter": 64,
    },
}
NETWORKS = ("vgg16_reduced", "vgg16_reduced_paper", *PRESETS)


def preset(network: str, data_shape: int = 300) -> dict:
    """A fresh copy of the configuration of ``network`` for a square input of ``data_shape``.

    ``vgg16_reduced`` follows the original: the 6-layer table below 448, the 7-layer one from 448 on, explicit
    steps only at exactly 300 / 512 (automatic otherwise). ``vgg16_reduced_paper`` is the same with caffe's
    SSD512 last layer (1x1 map) from 448 on.
    """
    if network in ("vgg16_reduced", "vgg16_reduced_paper"):
        if data_shape >= 448:
            config = copy.deepcopy(_VGG512_PAPER if network == "vgg16_reduced_paper" else _VGG512)
            base = (8, 16, 32, 64, 128, 256, 512)
            config["steps"] = [s / 512.0 for s in base] if data_shape == 512 else []
        else:
            config = copy.deepcopy(_VGG300)
            config["steps"] = [s / 300.0 for s in (8, 16, 32, 64, 100, 300)] if data_shape == 300 else []
        if data_shape not in (300, 512):
            logger.warning(
                "vgg16_reduced: data_shape %d was not tested by the original, use with caution", data_shape
            )
        return config
    if network not in PRESETS:
        raise KeyError(f"unknown network {network!r}; choose from {', '.join(NETWORKS)}")
    config = copy.deepcopy(PRESETS[network])
    config.setdefault("steps", [])
    return config
