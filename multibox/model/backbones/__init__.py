"""Base networks for SSD, one file per family. A new backbone is one file plus one line in ``BACKBONES``."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from multibox.model.backbones.base import Backbone, SequentialBackbone
from multibox.model.backbones.efficientnet_lite import EfficientNetLite0
from multibox.model.backbones.inception import InceptionV3
from multibox.model.backbones.mobilenet import MobileNetV1, MobileNetV2, MobileNetV3Large
from multibox.model.backbones.resnet import ResNet
from multibox.model.backbones.tiny import TinyNet
from multibox.model.backbones.vgg import VGG16Reduced

BACKBONES: dict[str, Callable[[], Backbone]] = {
    "vgg16_reduced": VGG16Reduced,
    "resnet50": partial(ResNet, 50),
    "resnet101": partial(ResNet, 101),
    "inceptionv3": InceptionV3,
    "mobilenet": MobileNetV1,
    "mobilenet_v2": MobileNetV2,
    "mobilenet_v3_large": MobileNetV3Large,
    "efficientnet_lite0": EfficientNetLite0,
    "tiny": TinyNet,
}


def build_backbone(name: str) -> Backbone:
    """A freshly initialised base network by name (see ``BACKBONES``)."""
    if name not in BACKBONES:
        raise KeyError(f"unknown backbone {name!r}; choose from {', '.join(BACKBONES)}")
    return BACKBONES[name]()


__all__ = [
    "BACKBONES",
    "Backbone",
    "SequentialBackbone",
    "build_backbone",
    "EfficientNetLite0",
    "InceptionV3",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3Large",
    "ResNet",
    "TinyNet",
    "VGG16Reduced",
]
