"""Base networks: real forward passes give the map sizes that shape inference (and spec §2) promise."""

from __future__ import annotations

import pytest
import torch

from multibox.model import build_backbone, build_ssd, preset


def test_inceptionv3_at_512_taps_mixed_7_and_mixed_10():
    model = build_ssd("inceptionv3", num_classes=20, data_shape=512).eval()
    with torch.no_grad():  # the single 512 forward of a big backbone in the suite
        feats = model.features(model.normalize(torch.rand(1, 3, 512, 512)))
    assert [tuple(f.shape[1:]) for f in feats] == [
        (768, 30, 30),
        (2048, 14, 14),
        (512, 7, 7),
        (256, 4, 4),
        (256, 2, 2),
        (128, 1, 1),
    ]
    assert model.backbone.taps == ("Mixed_6e", "Mixed_7c")


@pytest.mark.parametrize(
    ("network", "size", "channels", "maps"),
    [
        ("resnet50", 128, (1024, 2048), (8, 4)),
        ("mobilenet", 128, (512, 1024), (8, 4)),
        ("mobilenet_v2", 128, (576, 1280), (8, 4)),
        ("mobilenet_v3_large", 128, (672, 960), (8, 4)),
        ("efficientnet_lite0", 128, (672, 1280), (8, 4)),
        ("vgg16_reduced", 96, (512, 1024), (12, 6)),
    ],
)
def test_backbone_taps_real_forward(network, size, channels, maps):
    taps = [n for n in preset(network, 300)["from_layers"] if n]
    backbone = build_backbone(network).eval()
    assert backbone.set_taps(taps) == list(channels)
    with torch.no_grad():
        feats = backbone(torch.rand(1, 3, size, size))
    assert [f.shape[1] for f in feats] == list(channels)
    assert [f.shape[2] for f in feats] == list(maps)


def test_resnet_aliases_are_the_original_residual_names():
    r50, r101 = build_backbone("resnet50"), build_backbone("resnet101")
    assert r50.resolve("_plus12") == "layer3" and r50.resolve("_plus15") == "layer4"
    assert r101.resolve("_plus29") == "layer3" and r101.resolve("_plus32") == "layer4"


def test_tapping_stops_early():
    backbone = build_backbone("mobilenet").eval()
    backbone.set_taps(["conv_2"])
    calls = []
    hook = backbone.conv_14.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        backbone(torch.rand(1, 3, 64, 64))
    hook.remove()
    assert calls == []  # layers after the last tap never run
