"""The SSD network builder: the network table, base networks, extra layers, multibox heads, anchors.

>>> from multibox.model import build_ssd
>>> model = build_ssd("vgg16_reduced", num_classes=20, data_shape=300)
>>> loc_preds, cls_preds = model(images)          # (N, 4A), (N, 21, A); model.anchors (A, 4)
"""

from multibox.model.backbones import Backbone
from multibox.model.builder import build_ssd
from multibox.model.detection_settings import DetectionSettings
from multibox.model.networks import (
    NetworkSpec,
    SSDLayout,
    build_backbone,
    get_scales,
    network_names,
    network_spec,
    preset,
    register_network,
)
from multibox.model.ssd import SSD
from multibox.model.weights import WeightsUnavailableError, load_backbone_weights

__all__ = [
    "SSD",
    "Backbone",
    "DetectionSettings",
    "NetworkSpec",
    "SSDLayout",
    "WeightsUnavailableError",
    "build_backbone",
    "build_ssd",
    "get_scales",
    "load_backbone_weights",
    "network_names",
    "network_spec",
    "preset",
    "register_network",
]
