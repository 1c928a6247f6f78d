"""Precise BatchNorm statistics: the exact mean of per-batch statistics, nothing else touched."""

from __future__ import annotations

import torch
from torch import nn

from multibox.engine.precise_bn import recompute_batchnorm_statistics


def test_running_stats_become_the_mean_of_the_batch_statistics():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.01), nn.ReLU(), nn.BatchNorm2d(4))
    model.eval()  # the mode must come back as it was
    batches = [(torch.randn(5, 3, 8, 8) * (i + 1) + i, None) for i in range(4)]
    used = recompute_batchnorm_statistics(model, batches, num_batches=3)
    assert used == 3 and not model.training
    conv, first = model[0], model[1]
    with torch.no_grad():
        features = [conv(images) for images, _ in batches[:3]]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    torch.testing.assert_close(first.running_mean, means.mean(0), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.running_var, variances.mean(0), rtol=1e-5, atol=1e-6)
    assert first.momentum == 0.01 and model[3].momentum == 0.1  # momenta restored
    assert all(p.grad is None for p in model.parameters())


def test_a_model_without_batchnorm_is_left_alone():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
    before = [p.clone() for p in model.parameters()]
    assert recompute_batchnorm_statistics(model, [(torch.randn(2, 3, 8, 8), None)], 4) == 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_lagging_running_stats_are_what_it_repairs():
    # weights that moved after the running average was taken: eval output differs from train output
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.01))
    images = torch.randn(8, 3, 8, 8)
    with torch.no_grad():
        model.train()
        model(images)  # running stats barely move from (0, 1) with momentum 0.01
        model[0].weight.mul_(5.0)
        batch_mode = model(images)
        model.eval()
        lagging = model(images)
        recompute_batchnorm_statistics(model, [(images, None)], 1)
        repaired = model(images)
    assert (lagging - batch_mode).abs().max() > 1.0
    torch.testing.assert_close(repaired, batch_mode, rtol=0.05, atol=0.05)  # unbiased vs biased variance only
