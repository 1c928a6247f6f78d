"""Multi-scale training: the batch resize, the per-step draw, and a real step of an SSD at each size."""

from __future__ import annotations

import torch

from multibox.engine.multi_scale import MultiScale, resize_batch


def test_resize_keeps_dtype_and_a_constant_image_stays_constant():
    images = torch.full((2, 3, 64, 48), 200, dtype=torch.uint8)
    out = resize_batch(images, 32)
    assert out.shape == (2, 3, 32, 32) and out.dtype == torch.uint8
    assert bool((out == 200).all())
    ramp = torch.arange(8, dtype=torch.float32).repeat(1, 3, 8, 1)  # columns 0..7
    doubled = resize_batch(ramp, 16)
    # bilinear, half-pixel centres: output column j samples x = (j + 0.5) / 2 - 0.5, clamped at the edges
    expected = torch.tensor([max(0.0, min(7.0, (j + 0.5) / 2 - 0.5)) for j in range(16)])
    assert torch.allclose(doubled[0, 0, 0], expected, atol=1e-5)


def test_sizes_are_drawn_from_the_list_by_seed_and_step_alone():
    hook = MultiScale([64, 96, 128], seed=3)
    drawn = [hook.size_at(step) for step in range(200)]
    assert set(drawn) == {64, 96, 128}
    assert drawn == [
        MultiScale([64, 96, 128], seed=3).size_at(step) for step in range(200)
    ]  # any rank, resume
    assert drawn != [MultiScale([64, 96, 128], seed=4).size_at(step) for step in range(200)]


def test_an_ssd_trains_a_step_at_every_size_with_the_same_labels():
    from multibox.model import build_ssd

    torch.manual_seed(0)
    model = build_ssd("tiny", 2, 96)
    images = torch.randint(0, 256, (2, 3, 96, 96), dtype=torch.uint8)
    labels = torch.tensor([[[0, 0.1, 0.1, 0.6, 0.7, 0]], [[1, 0.3, 0.2, 0.9, 0.8, 0]]], dtype=torch.float32)
    anchors = {}
    for size in (64, 96, 128):
        out = model.loss(resize_batch(images, size), labels)
        assert torch.isfinite(out["loss"])
        out["loss"].backward()
        anchors[size] = model.anchors_for(size, size).shape[0]
    assert anchors[64] < anchors[96] < anchors[128]  # anchors follow the feature maps of each size
