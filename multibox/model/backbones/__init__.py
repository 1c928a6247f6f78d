"""Base networks for SSD, one file per family; :mod:`multibox.model.networks` names and builds them."""

from __future__ import annotations

from multibox.model.backbones.base import Backbone, SequentialBackbone
from multibox.model.backbones.efficientnet_lite import EfficientNetLite0
from multibox.model.backbones.inception import InceptionV3
from multibox.model.backbones.mobilenet import (
    MobileNetV1,
    MobileNetV2,
    MobileNetV3Large,
    TorchvisionSSDLiteMobileNetV3,
)
from multibox.model.backbones.resnet import ResNet
from multibox.model.backbones.tiny import TinyNet
from multibox.model.backbones.vgg import TorchvisionVGG16, VGG16Reduced

__all__ = [
    "Backbone",
    "SequentialBackbone",
    "EfficientNetLite0",
    "InceptionV3",
    "MobileNetV1",
    "MobileNetV2",
    "MobileNetV3Large",
    "ResNet",
    "TinyNet",
    "TorchvisionSSDLiteMobileNetV3",
    "TorchvisionVGG16",
    "VGG16Reduced",
]
