"""The SSD network builder: base networks, the network table, extra layers, multibox heads, anchors.

>>> from multibox.model import build_ssd
>>> model = build_ssd("vgg16_reduced", num_classes=20, data_shape=300)
>>> loc_preds, cls_preds = model(images)          # (N, 4A), (N, 21, A); model.anchors (A, 4)
"""

from multibox.model.backbones import BACKBONES, Backbone, build_backbone
from multibox.model.builder import build_ssd
from multibox.model.detection_settings import DetectionSettings
from multibox.model.presets import NETWORKS, get_scales, preset
from multibox.model.ssd import SSD
from multibox.model.weights import WeightsUnavailableError, load_backbone_weights

__all__ = [
    "BACKBONES",
    "NETWORKS",
    "SSD",
    "Backbone",
    "DetectionSettings",
    "WeightsUnavailableError",
    "build_backbone",
    "build_ssd",
    "get_scales",
    "load_backbone_weights",
    "preset",
]
