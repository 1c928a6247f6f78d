"""Anchors of the model = multibox_prior on every feature map, concatenated in layer order (spec §3.2)."""

from __future__ import annotations

import torch

from multibox.ops import multibox_prior
from tests.model.model_helpers import tiny_ssd


def test_vgg300_anchors_are_concatenated_multibox_priors(vgg300):
    steps = [s / 300 for s in (8, 16, 32, 64, 100, 300)]
    maps = [38, 19, 10, 5, 3, 1]
    expected = torch.cat(
        [
            multibox_prior((m, m), vgg300.sizes[k], vgg300.ratios[k], (steps[k], steps[k]))
            for k, m in enumerate(maps)
        ]
    )
    assert torch.equal(vgg300.anchors, expected)
    # spec §2.1: 114 anchors have centres beyond 1.0 (last row/column of the 10x10 map, step 32/300)
    centres = (vgg300.anchors[:, :2] + vgg300.anchors[:, 2:]) / 2
    assert int((centres > 1.0).any(1).sum()) == 114


def test_automatic_steps_and_other_input_sizes():
    model = tiny_ssd()
    expected = torch.cat(
        [multibox_prior((m, m), model.sizes[k], model.ratios[k]) for k, m in enumerate([16, 8, 4, 2])]
    )
    assert torch.equal(model.anchors, expected)
    # a non-square input: shapes from shape inference, anchors from the same rule
    h, w = 64, 96
    shapes = model.feature_shapes(h, w)
    assert shapes == [(16, 24), (8, 12), (4, 6), (2, 3)]
    anchors = model.anchors_for(h, w)
    assert torch.equal(
        anchors, torch.cat([multibox_prior(s, model.sizes[k], model.ratios[k]) for k, s in enumerate(shapes)])
    )
    assert model.anchors_for(h, w) is anchors  # cached
    with torch.no_grad():
        loc, cls = model(torch.rand(2, 3, h, w))
    assert loc.shape == (2, 4 * anchors.shape[0]) and cls.shape == (2, 4, anchors.shape[0])


def test_shape_inference_does_not_touch_batchnorm_statistics():
    model = tiny_ssd(depthwise=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    model.train()
    model.feature_shapes(128, 128)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
