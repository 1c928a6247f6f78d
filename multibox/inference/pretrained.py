"""Trained detectors to start from: the known sources (:data:`PRETRAINED`), their checkpoints, and
:func:`from_pretrained` (torchvision's style: a name in, a ready model out).

Only sources a library downloads for you are fetched (torchvision's, through its weights API, into torch's cache);
the original MXNet example's released models are files you download and import (``multibox weights import``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from multibox.checkpoint import read_checkpoint
from multibox.errors import ConfigError
from multibox.inference.checkpoint_model import model_from_checkpoint


@dataclass(frozen=True)
class PretrainedSource:
    """One trained detector: what it is, how well its publisher says it does, its licence, how to get it."""

    name: str
    network: str
    data: str
    published: str
    licence: str
    download: bool  # fetched by multibox (through torchvision) when asked; else a file to import

    @property
    def mxnet_network(self) -> str:
        """The original's ``--network`` name of an ``mxnet:`` source (``mxnet:ssd_resnet50_512`` -> resnet50)."""
        return self.name.removeprefix("mxnet:ssd_").rsplit("_", 1)[0]


PRETRAINED = {
    source.name: source
    for source in (
        PretrainedSource(
            "torchvision:ssd300_vgg16",
            "torchvision_ssd300_vgg16",
            "COCO train2017 (91-index COCO labels)",
            "box AP 25.1 on COCO val2017 (torchvision's SSD300_VGG16_Weights.COCO_V1)",
            "BSD-3-Clause (torchvision)",
            True,
        ),
        PretrainedSource(
            "torchvision:ssdlite320_mobilenet_v3_large",
            "torchvision_ssdlite320_mobilenet_v3_large",
            "COCO train2017 (91-index COCO labels)",
            "box AP 21.3 on COCO val2017 (torchvision's SSDLite320_MobileNet_V3_Large_Weights.COCO_V1)",
            "BSD-3-Clause (torchvision)",
            True,
        ),
        PretrainedSource(
            "mxnet:ssd_vgg16_reduced_300",
            "vgg16_reduced",
            "VOC07+12 trainval (20 VOC classes)",
            "VOC07 test mAP 77.8 (apache/mxnet example/ssd README)",
            "Apache-2.0 (apache/mxnet)",
            False,
        ),
        PretrainedSource(
            "mxnet:ssd_vgg16_reduced_512",
            "vgg16_reduced",
            "VOC07+12 trainval (20 VOC classes)",
            "VOC07 test mAP 79.9 (apache/mxnet example/ssd README)",
            "Apache-2.0 (apache/mxnet)",
            False,
        ),
        PretrainedSource(
            "mxnet:ssd_resnet50_512",
            "resnet50_v2",
            "VOC07+12 trainval (20 VOC classes)",
            "VOC07 test mAP 78.9 (apache/mxnet example/ssd README)",
            "Apache-2.0 (apache/mxnet)",
            False,
        ),
        PretrainedSource(
            "mxnet:ssd_inceptionv3_512",
            "inceptionv3_mxnet",
            "VOC07+12 trainval (20 VOC classes)",
            "VOC07 test mAP 78.9 (apache/mxnet example/ssd README)",
            "Apache-2.0 (apache/mxnet)",
            False,
        ),
    )
}


def pretrained_checkpoint(name: str) -> dict:
    """The checkpoint dict of a downloadable source of :data:`PRETRAINED` (fetched by torchvision unless cached;
    an offline machine gets one line naming the file to fetch elsewhere)."""
    source = PRETRAINED.get(name)
    if source is None:
        raise ConfigError(f"unknown pretrained source {name!r}; `multibox weights list` shows the known ones")
    if not source.download:
        raise ConfigError(
            f"{name} is not downloaded by multibox: download the original's model files and run "
            f"`multibox weights import PREFIX-0000.params --from mxnet --network {source.mxnet_network} ...`"
        )
    from multibox.model.import_torchvision import torchvision_checkpoint

    return torchvision_checkpoint(name.split(":", 1)[1], "COCO_V1")


def from_pretrained(source: str | Path, device: str | torch.device = "cpu") -> torch.nn.Module:
    """A trained SSD in eval mode from a :data:`PRETRAINED` name (``"torchvision:ssd300_vgg16"``) or a multibox
    checkpoint file; its class names are ``model.class_names``."""
    if str(source) in PRETRAINED:
        state = pretrained_checkpoint(str(source))
    else:
        state = read_checkpoint(source)
    return ready_model(state, str(source)).to(device)


def ready_model(state: dict, source: str = "the checkpoint") -> torch.nn.Module:
    """The SSD of a checkpoint dict in eval mode, with ``model.class_names``."""
    model = model_from_checkpoint(state, source)
    model.class_names = list(state["class_names"])
    return model.eval()
