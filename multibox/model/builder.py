"""``build_ssd``: an SSD of a network of the table (:mod:`multibox.model.networks`) by name."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from multibox.model.networks import build_backbone, network_spec, preset
from multibox.model.ssd import SSD
from multibox.model.weights import load_backbone_weights

_IMAGENET = {"image_mean": (0.485, 0.456, 0.406), "image_std": (0.229, 0.224, 0.225)}


def build_ssd(
    network: str,
    num_classes: int,
    data_shape: int = 300,
    *,
    weights_backbone: str | os.PathLike | Mapping[str, torch.Tensor] | None = None,
    **overrides,
) -> SSD:
    """An SSD of ``network`` (see :func:`~multibox.model.networks.network_names`) for ``data_shape``.

    Args:
        network: ``vgg16_reduced``, ``vgg16_reduced_paper``, ``vgg16_reduced_bn``, ``resnet50``, ``resnet101``,
            ``inceptionv3``, ``mobilenet``, ``mobilenet_v2``, ``mobilenet_v3_large``, ``efficientnet_lite0``, ``tiny``,
            ``torchvision_ssd300_vgg16``, ``torchvision_ssdlite320_mobilenet_v3_large`` (torchvision's SSD300 and
            SSDLite, see :mod:`multibox.model.import_torchvision`).
        num_classes: object classes without background (VOC: 20), as the original's ``--num-class``.
        data_shape: square input size; selects the vgg table (< 448: SSD300, else SSD512) and explicit steps.
        weights_backbone: ``None`` (random init), a torchvision weights name (``"IMAGENET1K_V1"``,
            ``"VGG16_Weights.IMAGENET1K_FEATURES"``; downloaded), a local state-dict file, a state dict, or
            ``"imagenet"`` for efficientnet_lite0 (offline, from the ``lite0`` extra).
        overrides: any layout field (``from_layers``, ``sizes``, ``ratios``, ``steps``, ``normalizations``,
            ...) or :class:`SSD` keyword (``depthwise``, ``image_mean``, ``image_std``, ``min_filter``,
            ``backbone``: a network name, whose base network is used, or a :class:`Backbone` instance).
    """
    config = preset(network, data_shape)
    config.update(overrides)
    backbone = config.pop("backbone", network)
    weights_network = backbone if isinstance(backbone, str) else network  # whose weights fit the backbone
    if isinstance(backbone, str):
        backbone = build_backbone(backbone)
        # torchvision's V1 VGG weights expect ImageNet mean/std, not caffe's
        if (
            isinstance(weights_backbone, str)
            and network_spec(weights_network).torchvision_weights == "VGG16_Weights"
            and weights_backbone.endswith("IMAGENET1K_V1")
        ):
            for key, value in _IMAGENET.items():
                config.setdefault(key, value)
    model = SSD(backbone, num_classes=num_classes, data_shape=data_shape, **config)
    if weights_backbone is not None:
        load_backbone_weights(model.backbone, weights_network, weights_backbone)
    return model
