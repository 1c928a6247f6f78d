"""The SSD module's contract: forward, loss, detect, predict, tracing, initialisation, names."""

from __future__ import annotations

import math

import pytest
import torch

from multibox.model import SSD
from tests.model.model_helpers import tiny_ssd


def _labels() -> torch.Tensor:
    labels = torch.full((2, 3, 6), -1.0)  # (N, M, 6) [cls, x1, y1, x2, y2, difficult]
    labels[0, 0] = torch.tensor([0, 0.1, 0.1, 0.5, 0.6, 0])
    labels[0, 1] = torch.tensor([2, 0.5, 0.4, 0.9, 0.95, 0])
    labels[1, 0] = torch.tensor([1, 0.3, 0.2, 0.7, 0.8, 0])
    return labels


def test_forward_shapes_and_uint8_input(tiny):
    tiny.eval()
    images8 = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    a = tiny.anchors.shape[0]
    with torch.no_grad():
        loc, cls = tiny(images8.float() / 255)
        loc8, cls8 = tiny(images8)
    assert loc.shape == (2, 4 * a) and cls.shape == (2, 4, a)
    assert torch.allclose(loc, loc8, atol=1e-5) and torch.allclose(cls, cls8, atol=1e-5)


def test_loss_returns_losses_and_targets_and_trains(tiny):
    tiny.train()
    out = tiny.loss(torch.rand(2, 3, 64, 64), _labels())
    a = tiny.anchors.shape[0]
    assert out["cls_target"].shape == (2, a) and out["loc_target"].shape == (2, 4 * a)
    assert out["loc_mask"].shape == (2, 4 * a) and out["cls_preds"].shape == (2, 4, a)
    assert torch.isfinite(out["loss"]) and out["loss"] == out["cls_loss"] + out["loc_loss"]
    positives = int((out["cls_target"] > 0).sum())
    negatives = int((out["cls_target"] == 0).sum())
    assert positives >= 3 and negatives == pytest.approx(3 * positives, abs=3)  # mining ratio 3 per image
    out["loss"].backward()
    assert tiny.stride8_cls_pred_conv.weight.grad.abs().sum() > 0
    assert tiny.s4_scale.grad is not None


def test_detect_and_predict_in_pixels(tiny):
    tiny.eval()
    dets = tiny.detect(torch.rand(2, 3, 64, 64), threshold=0.0)
    assert dets.shape == (2, tiny.detection.max_detections, 6)  # the model's own settings
    every_anchor = tiny.detect(torch.rand(2, 3, 64, 64), per_class=False, max_detections=None)
    assert every_anchor.shape == (2, tiny.anchors.shape[0], 6)  # the original's output
    valid = dets[dets[..., 0] >= 0]
    assert len(valid) > 0 and valid[:, 0].max() < tiny.num_classes
    assert (valid[:, 2:] >= 0).all() and (valid[:, 2:] <= 1).all()  # clip=True

    images = [torch.rand(3, 120, 200), (torch.rand(3, 50, 40) * 255).to(torch.uint8)]
    results = tiny.predict(images, threshold=0.0, per_class=True, max_detections=10)
    assert len(results) == 2
    for res, (h, w) in zip(results, [(120, 200), (50, 40)], strict=True):
        assert set(res) == {"boxes", "scores", "labels"}
        assert res["boxes"].shape[1] == 4 and res["labels"].dtype == torch.int64
        assert len(res["boxes"]) <= 10
        assert res["boxes"][:, 0::2].max() <= w and res["boxes"][:, 1::2].max() <= h
    # a resized batch with original sizes: boxes are the normalised ones times (w, h, w, h)
    batch = torch.rand(1, 3, 64, 64)
    det = tiny.detect(batch, threshold=0.0)[0]
    det = det[det[:, 0] >= 0]
    res = tiny.predict(batch, image_sizes=[(480, 640)], threshold=0.0)[0]
    assert torch.allclose(res["boxes"], det[:, 2:] * torch.tensor([640, 480, 640, 480]))


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning", "ignore::FutureWarning")
def test_jit_trace_of_forward_and_detection():
    model = tiny_ssd().eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        traced = torch.jit.trace(model, images)
        other = torch.rand(3, 3, 64, 64)  # the forward trace generalises to other batches
        assert all(torch.allclose(e, o, atol=1e-6) for e, o in zip(model(other), traced(other), strict=True))
        # detection traces too; its data-dependent sizes become constants (export handles them later)
        detector = torch.jit.trace_module(model, {"detect": images}, check_trace=False)
        assert torch.equal(detector.detect(images), model.detect(images))


def test_l2_norm_scale_and_xavier_init(tiny):
    assert torch.all(tiny.s4_scale == 20.0) and tiny.s4_scale.shape == (1, 8, 1, 1)
    conv = tiny.multi_feat_2_conv_3x3
    bound = math.sqrt(6.0 / (conv.in_channels * 9 + conv.out_channels * 9))
    assert conv.weight.abs().max() <= bound and conv.weight.abs().max() > 0.9 * bound
    assert torch.all(conv.bias == 0) and torch.all(tiny.s4_loc_pred_conv.bias == 0)
    # the normalised layer-0 feature has norm 20 at every location
    feat = tiny.features(tiny.normalize(torch.rand(1, 3, 64, 64)))[0]
    from multibox.model.layers import l2_normalize

    norms = l2_normalize(feat, tiny.s4_scale).pow(2).sum(1).sqrt()
    assert torch.allclose(norms[norms > 0], torch.tensor(20.0), rtol=1e-4)


def test_parameter_names_follow_the_original(vgg300):
    names = set(dict(vgg300.named_parameters()))
    for expected in (
        "backbone.conv1_1.weight",
        "backbone.conv4_3.weight",
        "backbone.fc6.weight",
        "backbone.fc7.bias",
        "relu4_3_scale",
        "relu4_3_loc_pred_conv.weight",
        "relu7_cls_pred_conv.bias",
        "multi_feat_2_conv_1x1.weight",
        "multi_feat_2_conv_3x3.bias",
        "multi_feat_5_conv_3x3_relu_loc_pred_conv.weight",
    ):
        assert expected in names
    assert vgg300.backbone.fc6.dilation == (6, 6) and vgg300.backbone.fc6.padding == (6, 6)
    assert vgg300.backbone.pool3.ceil_mode and not vgg300.backbone.pool4.ceil_mode
    assert vgg300.relu4_3_scale.shape == (1, 512, 1, 1)


def test_vgg300_forward_and_loss_once(vgg300):
    vgg300.train()
    out = vgg300.loss(torch.rand(1, 3, 300, 300), _labels()[:1])
    assert out["cls_preds"].shape == (1, 21, 8732) and torch.isfinite(out["loss"])


def test_depthwise_heads_are_separable():
    model = tiny_ssd(depthwise=True)
    head = model.stride8_loc_pred_conv
    assert head.depthwise.conv.groups == 16 and head.pointwise.kernel_size == (1, 1)
    assert model.multi_feat_2_conv_3x3.depthwise.conv.stride == (2, 2)
    with torch.no_grad():
        loc, cls = model.eval()(torch.rand(1, 3, 64, 64))
    assert loc.shape[1] == 4 * model.anchors.shape[0]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"from_layers": ["", "s4", "", ""]}, "start with a backbone layer"),
        ({"strides": [-1, 2, 2]}, "strides has 3"),
        ({"sizes": [0.1, 0.2]}, "one list per layer"),
        ({"steps": [0.1, 0.2]}, "steps has 2"),
        ({"num_classes": 0}, "num_classes"),
    ],
)
def test_configuration_errors_are_clear(change, message):
    with pytest.raises(ValueError, match=message):
        tiny_ssd(**change)


def test_unknown_tap_lists_the_layers():
    with pytest.raises(KeyError, match="tappable layers: s4, s8, stem, stride8"):
        tiny_ssd(from_layers=["relu4_3", "s8", "", ""])
    assert isinstance(tiny_ssd(), SSD)


def test_torch_export_of_forward():
    model = tiny_ssd().eval()
    images = torch.rand(2, 3, 64, 64)
    exported = torch.export.export(model, (images,))
    with torch.no_grad():
        for e, o in zip(model(images), exported.module()(images), strict=True):
            assert torch.allclose(e, o, atol=1e-6)
