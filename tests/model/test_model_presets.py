"""The network table against spec §2: feature-map sizes, anchor counts, parameter count; the registry."""

from __future__ import annotations

import math

import pytest

from multibox.model import (
    NetworkSpec,
    build_backbone,
    build_ssd,
    get_scales,
    network_names,
    network_spec,
    preset,
    register_network,
)
from multibox.model.backbones import TinyNet
from multibox.model.networks import _NETWORKS

# (network, data_shape, map sizes, total anchors) from spec §2.1-2.3 (MXNet shape inference)
SPEC_TABLE = [
    ("vgg16_reduced", 300, [38, 19, 10, 5, 3, 1], 8732),
    ("vgg16_reduced", 512, [64, 32, 16, 8, 4, 2, 2], 24576),
    ("vgg16_reduced", 448, [56, 28, 14, 7, 4, 2, 2], 18846),
    ("vgg16_reduced_paper", 512, [64, 32, 16, 8, 4, 2, 1], 24564),
    ("resnet50", 512, [32, 16, 8, 4, 2, 1], 6132),
    ("resnet50", 300, [19, 10, 5, 3, 2, 1], 2268),
    ("resnet101", 512, [32, 16, 8, 4, 2, 1], 6132),
    ("inceptionv3", 512, [30, 14, 7, 4, 2, 1], 5186),
    ("inceptionv3", 300, [17, 8, 4, 2, 1, 1], 1668),
    ("mobilenet", 512, [32, 16, 8, 4, 2, 1, 1], 6144),
    ("mobilenet_v2", 320, [20, 10, 5, 3, 2, 1], 2424),
    ("mobilenet_v3_large", 320, [20, 10, 5, 3, 2, 1], 2424),
    ("efficientnet_lite0", 320, [20, 10, 5, 3, 2, 1], 2424),
]


@pytest.mark.parametrize(("network", "data_shape", "maps", "total"), SPEC_TABLE)
def test_feature_maps_and_anchor_counts_match_spec(network, data_shape, maps, total):
    model = build_ssd(network, num_classes=20, data_shape=data_shape)
    assert [h for h, _ in model.feature_shapes(data_shape, data_shape)] == maps
    assert [w for _, w in model.feature_shapes(data_shape, data_shape)] == maps
    assert model.anchors.shape == (total, 4)


def test_ssd300_voc_parameter_count_equals_caffe():
    model = build_ssd("vgg16_reduced", num_classes=20, data_shape=300)
    # caffe SSD300 VOC0712 (and OpenVINO's card): 26,285,486 parameters, L2-norm scale included
    assert sum(p.numel() for p in model.parameters()) == 26_285_486


def test_vgg_steps_explicit_only_at_300_and_512():
    assert preset("vgg16_reduced", 300)["steps"] == [s / 300 for s in (8, 16, 32, 64, 100, 300)]
    assert preset("vgg16_reduced", 512)["steps"] == [s / 512 for s in (8, 16, 32, 64, 128, 256, 512)]
    assert preset("vgg16_reduced", 320)["steps"] == []
    assert preset("resnet50", 512)["steps"] == []


def test_extra_layer_filters_follow_max_min_filter_half():
    model = build_ssd("resnet50", num_classes=20, data_shape=300)
    # num_filters 512, 256, 256, 128 -> 1x1 filters 256, 128, 128, 128 (spec §2.3)
    widths = [getattr(model, f"multi_feat_{k}_conv_1x1").out_channels for k in (2, 3, 4, 5)]
    assert widths == [256, 128, 128, 128]
    assert [getattr(model, f"multi_feat_{k}_conv_3x3").stride for k in (2, 3, 4, 5)] == [(2, 2)] * 4


def test_get_scales_matches_zhreshold():
    scales = get_scales(0.15, 0.9, 7)
    assert [s[0] for s in scales] == [0.07, 0.15, 0.3, 0.45, 0.6, 0.75, 0.9]
    assert scales[0][1] == pytest.approx(math.sqrt(0.07 * 0.15), rel=1e-6)
    assert scales[-1][1] == pytest.approx(math.sqrt(0.9 * 1.05), rel=1e-6)
    # the apache vgg512 table is these values rounded to 4 digits
    assert [round(s[1], 4) for s in scales] == pytest.approx(
        [0.1025, 0.2121, 0.3674, 0.5196, 0.6708, 0.8216, 0.9721], abs=1e-4
    )


def test_overrides_replace_preset_fields():
    model = build_ssd("vgg16_reduced", num_classes=3, data_shape=300, ratios=[1, 2, 0.5], normalizations=-1)
    assert model.num_anchors == [4] * 6
    assert not any(name.endswith("_scale") for name, _ in model.named_parameters())
    assert model.relu7_cls_pred_conv.out_channels == 4 * (3 + 1)
    assert model.anchors.shape == ((38 * 38 + 19 * 19 + 10 * 10 + 5 * 5 + 3 * 3 + 1) * 4, 4)


def test_unknown_network_lists_choices():
    with pytest.raises(KeyError, match="vgg16_reduced"):
        build_ssd("vgg19", num_classes=20)
    assert "efficientnet_lite0" in network_names()
    with pytest.raises(KeyError, match="tiny"):
        network_spec("vgg19")


def test_every_network_name_builds_from_its_spec():
    assert network_names()[:2] == ("vgg16_reduced", "vgg16_reduced_paper") and "tiny" in network_names()
    for name in network_names():
        spec = network_spec(name)
        assert spec.name == name and isinstance(build_backbone(name), type(spec.backbone()))
        assert preset(name, 300)["from_layers"][0] == spec.layout_for(300).from_layers[0]


def test_the_spec_carries_weights_and_the_default_freeze():
    assert network_spec("vgg16_reduced").freeze == network_spec("vgg16_reduced_paper").freeze
    assert network_spec("vgg16_reduced").freeze == r"^backbone\.(conv1_|conv2_)"
    assert network_spec("resnet50").freeze is None
    assert network_spec("resnet50").torchvision_weights == "ResNet50_Weights"
    assert network_spec("mobilenet").torchvision_weights is None  # v1: local files only


def test_vgg16_reduced_bn_freezes_the_batchnorms_of_the_blocks_vgg16_reduced_freezes():
    """From pretrained weights both freeze blocks 1-2: the BatchNorms there with their convs, none further up."""
    import re

    backbone = build_backbone("vgg16_reduced_bn")
    frozen = {
        n
        for n, _ in backbone.named_parameters()
        if re.match(network_spec("vgg16_reduced_bn").freeze, "backbone." + n)
    }
    blocks = {n.split(".")[0] for n in frozen}
    assert blocks == {"conv1_1", "bn1_1", "conv1_2", "bn1_2", "conv2_1", "bn2_1", "conv2_2", "bn2_2"}


def test_a_new_network_is_one_entry(monkeypatch):
    monkeypatch.setitem(_NETWORKS, "tiny_wide", None)  # removed again after the test
    tiny = network_spec("tiny")
    register_network(NetworkSpec("tiny_wide", TinyNet, tiny.layout, freeze=r"^backbone\.stage1"))
    assert "tiny_wide" in network_names()
    model = build_ssd("tiny_wide", num_classes=2, data_shape=64)
    assert model.anchors.shape == build_ssd("tiny", num_classes=2, data_shape=64).anchors.shape


def test_preset_is_a_fresh_copy():
    first = preset("vgg16_reduced", 300)
    first["sizes"][0][0] = 99.0
    first["from_layers"].append("x")
    assert preset("vgg16_reduced", 300)["sizes"][0][0] == 0.1
    assert len(preset("vgg16_reduced", 300)["from_layers"]) == 6
