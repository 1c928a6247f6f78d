"""torchvision's ``ssd300_vgg16`` and ``ssdlite320_mobilenet_v3_large`` imported into multibox (issue 16): the
same network, anchors, decoding and detections, offline. Weights are drawn from a seed (never downloaded); the
class logits are scaled so that scores are peaky but not saturated (top scores about 0.25 to 0.8 over some 25
classes per photo)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.error import URLError

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.models.detection import SSD300_VGG16_Weights, ssd300_vgg16, ssdlite320_mobilenet_v3_large
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList

from multibox.checkpoint import atomic_save
from multibox.errors import ConfigError, DataError
from multibox.inference import load_checkpoint_model
from multibox.model import build_ssd
from multibox.model.import_torchvision import (
    checkpoint_of,
    import_torchvision_ssd,
    load_torchvision_model,
    torchvision_checkpoint,
)
from multibox.model.resize import resize_for_network

PHOTOS = sorted((Path(__file__).parents[1] / "fixtures" / "bccd_subset" / "JPEGImages").glob("*.jpg"))[:3]
SCORE_TIE = 1e-5  # detections whose scores differ by less may come out in either order


@dataclass(frozen=True)
class Case:
    builder: Callable[..., nn.Module]
    network: str
    size: int
    anchors: int
    parameters: int
    detections: int  # torchvision's detections_per_img, reached on every photo
    same_tensors: tuple[tuple[str, str], ...]  # (ours, torchvision's) spot checks of the renaming


CASES = {
    "ssd300_vgg16": Case(
        ssd300_vgg16,
        "torchvision_ssd300_vgg16",
        300,
        8732,
        35_641_826,
        200,
        (
            ("relu4_3_scale", "backbone.scale_weight"),
            ("backbone.conv4_3.weight", "backbone.features.21.weight"),
            ("backbone.fc7.weight", "backbone.extra.0.7.3.weight"),
            ("multi_feat_5_conv_3x3.bias", "backbone.extra.4.2.bias"),
            ("multi_feat_5_conv_3x3_relu_cls_pred_conv.bias", "head.classification_head.module_list.5.bias"),
        ),
    ),
    "ssdlite320_mobilenet_v3_large": Case(
        ssdlite320_mobilenet_v3_large,
        "torchvision_ssdlite320_mobilenet_v3_large",
        320,
        3234,
        3_440_060,
        300,
        (
            ("backbone.features.13.block.0.1.running_var", "backbone.features.0.13.1.running_var"),
            ("backbone.features.13.block.1.0.weight", "backbone.features.1.0.1.0.weight"),
            ("backbone.features.16.1.running_mean", "backbone.features.1.3.1.running_mean"),
            ("multi_feat_5_conv_3x3.pointwise.bn.weight", "backbone.extra.3.2.1.weight"),
            (
                "features_13_block_0_loc_pred_conv.depthwise.bn.running_mean",
                "head.regression_head.module_list.0.0.1.running_mean",
            ),
            (
                "multi_feat_5_conv_3x3_relu_cls_pred_conv.pointwise.bias",
                "head.classification_head.module_list.5.1.bias",
            ),
        ),
    ),
}


def redraw(tv_model: nn.Module, seed: int) -> None:
    """Every parameter and BatchNorm statistic drawn afresh from ``seed``: He-normal conv weights, small biases,
    BatchNorm scales near 1, the L2-norm scale around its initial 20."""
    generator = torch.Generator().manual_seed(seed)
    norms = {name for name, m in tv_model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    with torch.no_grad():
        for name, p in tv_model.named_parameters():
            noise = torch.randn(p.shape, generator=generator)
            if name == "backbone.scale_weight":
                p.copy_(20 + 2 * noise)
            elif name.rpartition(".")[0] in norms:
                p.copy_(1 + 0.1 * noise if name.endswith(".weight") else 0.1 * noise)
            elif p.dim() > 1:
                p.copy_(noise * math.sqrt(2 / p[0].numel()))
            else:
                p.copy_(0.05 * noise)
        for module in tv_model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.normal_(0, 0.1, generator=generator)
                module.running_var.uniform_(0.5, 1.5, generator=generator)


def scale_heads(tv_model: nn.Module, images: list[torch.Tensor], loc_std: float, cls_std: float) -> None:
    """Each head's last conv rescaled so its outputs on ``images`` have standard deviation ``loc_std`` / ``cls_std``."""
    with torch.no_grad():
        features = list(tv_model.backbone(tv_model.transform(images)[0].tensors).values())
        head = tv_model.head
        for convs, target in (
            (head.regression_head.module_list, loc_std),
            (head.classification_head.module_list, cls_std),
        ):
            for block, x in zip(convs, features, strict=True):
                factor = target / block(x).std()
                last = [m for m in block.modules() if isinstance(m, nn.Conv2d)][-1]  # SSDLite: dw 3x3, 1x1
                last.weight.mul_(factor)
                last.bias.mul_(factor)


@pytest.fixture(scope="module", params=list(CASES))
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def photos(arch) -> torch.Tensor:
    """Three BCCD photos resized to the network's input (uint8), so both models' own resize is the identity."""
    size = CASES[arch].size
    return torch.from_numpy(resize_for_network([Image.open(p) for p in PHOTOS], (size, size)))


@pytest.fixture(scope="module")
def tv_model(arch, photos) -> nn.Module:
    torch.manual_seed(0)
    model = CASES[arch].builder(weights=None, weights_backbone=None, num_classes=91)
    redraw(model, seed=16)
    model.eval()  # before the calibration: BatchNorm keeps its drawn statistics
    scale_heads(model, [im.float() / 255 for im in photos], loc_std=1.0, cls_std=1.5)
    return model


@pytest.fixture(scope="module")
def imported(tv_model):
    return import_torchvision_ssd(tv_model)


@pytest.fixture(scope="module")
def tv_detections(tv_model, photos) -> list[dict]:
    with torch.no_grad():
        return tv_model([im.float() / 255 for im in photos])


def canonical(detections: dict, reference_scores: torch.Tensor, label_offset: int = 0) -> dict:
    """``detections`` with runs of near-equal reference scores (closer than SCORE_TIE) ordered by label, then box;
    every other detection keeps its place."""
    gaps = (reference_scores[:-1] - reference_scores[1:]) > SCORE_TIE
    run = torch.cat([torch.zeros(1, dtype=torch.long), gaps.long().cumsum(0)]).tolist()
    labels, boxes = detections["labels"] + label_offset, detections["boxes"]
    order = sorted(range(len(run)), key=lambda i: (run[i], int(labels[i]), *boxes[i].tolist()))
    return {"labels": labels[order], "scores": detections["scores"][order], "boxes": boxes[order]}


def assert_same_detections(ours: list[dict], theirs: list[dict], count: int) -> None:
    """Same labels in the same order (up to score ties), boxes within 1e-3 relative, scores within 1e-4."""
    for mine, tv in zip(ours, theirs, strict=True):
        assert len(mine["labels"]) == len(tv["labels"]) == count  # a full list: the cap is reached
        mine, tv = canonical(mine, tv["scores"], label_offset=1), canonical(tv, tv["scores"])
        assert torch.equal(mine["labels"], tv["labels"])
        torch.testing.assert_close(mine["scores"], tv["scores"], rtol=0, atol=1e-4)
        torch.testing.assert_close(mine["boxes"], tv["boxes"], rtol=1e-3, atol=1e-3)  # pixels


def test_every_tensor_maps_and_the_settings_are_torchvision_s(arch, tv_model, imported):
    case, (model, names) = CASES[arch], imported
    assert model.num_classes == 90 and len(names) == 90
    count = sum(p.numel() for p in model.parameters())
    assert count == sum(p.numel() for p in tv_model.parameters()) == case.parameters
    assert len(model.state_dict()) == len(tv_model.state_dict())
    ours, theirs = model.state_dict(), tv_model.state_dict()
    for our_key, their_key in case.same_tensors:
        assert torch.equal(ours[our_key].flatten(), theirs[their_key].flatten()), our_key
    # COCO_V1's 91 outputs: background dropped, the "N/A" slots kept, so class i is torchvision's label i + 1
    categories = SSD300_VGG16_Weights.COCO_V1.meta["categories"]
    unused = [k for k, name in enumerate(categories) if name == "N/A"]  # COCO ids without a category
    assert names == [f"N/A {k}" if k in unused else categories[k] for k in range(1, 91)]
    assert names[0] == "person" and names[11] == "N/A 12" and len(set(names)) == 90
    d = model.detection
    assert (d.threshold, d.nms_threshold, d.nms_topk, d.max_detections) == (
        tv_model.score_thresh,
        tv_model.nms_thresh,
        tv_model.topk_candidates,
        tv_model.detections_per_img,
    )
    assert d.per_class and not d.force_suppress and d.clip


def test_anchors_are_torchvision_s_default_boxes(arch, tv_model, imported):
    case, (model, _) = CASES[arch], imported
    size = case.size
    maps = [torch.zeros(1, 1, h, w) for h, w in model.feature_shapes(size, size)]
    theirs = tv_model.anchor_generator(ImageList(torch.zeros(1, 3, size, size), [(size, size)]), maps)[0]
    assert model.anchor_style == "torchvision" and theirs.shape == (case.anchors, 4)
    assert torch.equal(model.anchors * size, theirs)  # bit for bit, torchvision's pixels
    # the last (1x1) map's wide anchors are clamped to the image width, as DefaultBoxGenerator(clip=True)
    last = model.anchors[-model.num_anchors[-1] :]
    assert ((last[:, 0] == 0) & (last[:, 2] == 1)).any()


def test_input_normalisation_and_head_outputs_match(arch, tv_model, imported, photos):
    case, (model, _) = CASES[arch], imported
    with torch.no_grad():
        tv_input = tv_model.transform([im.float() / 255 for im in photos])[0].tensors
        # an image at the input size: torchvision's resize is the identity, only its normalisation acts
        assert torch.equal(tv_input[0], tv_model.transform.normalize(photos[0].float() / 255))
        torch.testing.assert_close(model.normalize(photos), tv_input, rtol=0, atol=1e-4)
        heads = tv_model.head(list(tv_model.backbone(tv_input).values()))
        loc_preds, cls_preds = model(photos)
    loc, cls = loc_preds.view(3, -1, 4), cls_preds.transpose(1, 2)  # (N, A, 4), (N, A, 91) as torchvision's
    assert loc.shape == heads["bbox_regression"].shape == (3, case.anchors, 4)
    assert cls.shape == heads["cls_logits"].shape == (3, case.anchors, 91)
    torch.testing.assert_close(loc, heads["bbox_regression"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(cls, heads["cls_logits"], rtol=1e-4, atol=1e-4)


def test_detections_match_torchvision(arch, imported, photos, tv_detections):
    model, _ = imported
    assert_same_detections(model.predict(list(photos)), tv_detections, CASES[arch].detections)
    # the photos' scores: peaky, not saturated
    scores = torch.cat([d["scores"] for d in tv_detections])
    assert 0.5 < float(scores.max()) < 0.95 and float(scores.min()) > 0.2


def test_a_checkpoint_from_the_weights_detects_the_same(
    arch, tv_model, imported, photos, tv_detections, tmp_path
):
    case = CASES[arch]
    if arch == "ssd300_vgg16":  # a weights file, as the one at SSD300_VGG16_Weights.COCO_V1.url
        weights = tmp_path / "ssd300_vgg16_coco.pth"
        torch.save(tv_model.state_dict(), weights)
    else:  # a state dict in memory
        weights = tv_model.state_dict()
    checkpoint = torchvision_checkpoint(arch, weights=weights)
    assert checkpoint["network"] == {
        "name": case.network,
        "num_classes": 90,
        "data_shape": case.size,
        "options": {},
    }
    assert checkpoint["imported_from"]["arch"] == arch
    path = atomic_save(checkpoint, tmp_path / "imported.pt")
    loaded, names, network = load_checkpoint_model(path)
    assert names == imported[1] and network["name"] == case.network
    assert loaded.detection == imported[0].detection
    ours = loaded.predict(list(photos))
    direct = imported[0].predict(list(photos))
    for a, b in zip(ours, direct, strict=True):
        assert all(torch.equal(a[k], b[k]) for k in ("boxes", "scores", "labels"))
    assert_same_detections(ours, tv_detections, case.detections)


def test_other_classes_and_input_normalisation_survive_the_checkpoint(tmp_path):
    torch.manual_seed(0)
    mean, std = [0.5, 0.4, 0.3], [0.25, 0.2, 0.3]
    tv_model = ssd300_vgg16(
        weights=None, weights_backbone=None, num_classes=3, image_mean=mean, image_std=std
    )
    tv_model.eval()
    with pytest.raises(ConfigError, match="give its class names"):
        import_torchvision_ssd(tv_model)
    with pytest.raises(ConfigError, match="give 2"):
        import_torchvision_ssd(tv_model, class_names=["a", "b", "c"])
    checkpoint = checkpoint_of(tv_model, class_names=["cat", "dog"])
    assert checkpoint["network"]["options"] == {"image_mean": mean, "image_std": std}
    model, names, _ = load_checkpoint_model(atomic_save(checkpoint, tmp_path / "two.pt"))
    assert names == ["cat", "dog"] and model.num_classes == 2
    x = torch.rand(3, 300, 300)
    with torch.no_grad():
        theirs = tv_model.head(list(tv_model.backbone(tv_model.transform([x])[0].tensors).values()))
        loc_preds, cls_preds = model(x[None])
    torch.testing.assert_close(cls_preds.transpose(1, 2), theirs["cls_logits"], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(loc_preds.view(1, -1, 4), theirs["bbox_regression"], rtol=1e-4, atol=1e-4)
    # other anchors, or a layer that differs from ssd300_vgg16's (pool3 without ceil mode), are refused
    standard = tv_model.anchor_generator
    tv_model.anchor_generator = DefaultBoxGenerator(
        [[2, 3]] * 6, scales=standard.scales, steps=standard.steps
    )
    with pytest.raises(ConfigError, match="its anchors are not torchvision_ssd300_vgg16's"):
        import_torchvision_ssd(tv_model, class_names=["cat", "dog"])
    tv_model.anchor_generator = standard
    tv_model.backbone.features[16].ceil_mode = False
    with pytest.raises(ConfigError, match=r"backbone\.features\.16 .* does not match backbone\.pool3"):
        import_torchvision_ssd(tv_model, class_names=["cat", "dog"])


def test_user_errors_are_one_line(tmp_path, monkeypatch):
    def fails(*_, **__):
        raise URLError("no network")

    monkeypatch.setattr(SSD300_VGG16_Weights, "get_state_dict", fails)
    damaged = tmp_path / "damaged.pth"
    damaged.write_bytes(b"PK\x03\x04 not really")
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, other)
    cases = [
        (ConfigError, "supported: ssd300_vgg16", lambda: load_torchvision_model("ssd512_vgg16")),
        (ConfigError, "COCO_V1", lambda: load_torchvision_model("ssd300_vgg16", "COCO_V2")),
        (DataError, "download https://", lambda: load_torchvision_model("ssd300_vgg16", "COCO_V1")),
        (DataError, "not found", lambda: load_torchvision_model("ssd300_vgg16", str(tmp_path / "no.pth"))),
        (DataError, "cannot read", lambda: load_torchvision_model("ssd300_vgg16", damaged)),
        (DataError, "no head.classification_head", lambda: load_torchvision_model("ssd300_vgg16", other)),
        (ConfigError, "got Linear", lambda: import_torchvision_ssd(nn.Linear(2, 2))),
        (ConfigError, "anchor_style must be one of", lambda: build_ssd("tiny", 2, 64, anchor_style="caffe")),
    ]
    for kind, text, call in cases:
        with pytest.raises(kind, match=text) as error:
            call()
        assert "\n" not in str(error.value)
