"""MXNetSGD against MXNet's update written out in numpy, and against PyTorch's SGD where they must agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from multibox.engine.mxnet_sgd import MXNetSGD
from multibox.engine.optim import build_optimizer

GRADS = [
    np.array([0.5, -1.0, 2.0]),
    np.array([1.0, 0.25, -0.5]),
    np.array([-2.0, 0.5, 0.5]),
    np.array([0.1, 0.1, 0.1]),
]
LRS = [0.1, 0.1, 0.01, 0.01]  # a step decay after two updates


def _mxnet_reference(w0: np.ndarray, momentum: float, wd: float) -> list[np.ndarray]:
    """sgd_mom_update: mom = momentum * mom - lr * (grad + wd * w); w += mom."""
    w, mom, out = w0.copy(), np.zeros_like(w0), []
    for grad, lr in zip(GRADS, LRS, strict=True):
        mom = momentum * mom - lr * (grad + wd * w)
        w = w + mom
        out.append(w.copy())
    return out


def _run(optimizer_factory, w0: np.ndarray, lrs=LRS) -> list[np.ndarray]:
    weight = torch.nn.Parameter(torch.tensor(w0, dtype=torch.float64))
    optimizer = optimizer_factory([weight])
    out = []
    for grad, lr in zip(GRADS, lrs, strict=True):
        for group in optimizer.param_groups:
            group["lr"] = lr
        weight.grad = torch.tensor(grad, dtype=torch.float64)
        optimizer.step()
        out.append(weight.detach().numpy().copy())
    return out


@pytest.mark.parametrize("wd", [0.0, 0.05])
def test_updates_equal_mxnets_formula_across_a_learning_rate_step(wd):
    w0 = np.array([1.0, -2.0, 0.5])
    ours = _run(lambda p: MXNetSGD(p, lr=0.1, momentum=0.9, weight_decay=wd), w0)
    for got, expected in zip(ours, _mxnet_reference(w0, 0.9, wd), strict=True):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_equals_pytorch_sgd_at_a_constant_rate_and_differs_after_a_step():
    w0 = np.array([1.0, -2.0, 0.5])
    constant = [0.1] * 4
    ours = _run(lambda p: MXNetSGD(p, lr=0.1, momentum=0.9, weight_decay=0.05), w0, constant)
    torch_sgd = _run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, weight_decay=0.05), w0, constant)
    np.testing.assert_allclose(ours, torch_sgd, rtol=1e-12)
    stepped_ours = _run(lambda p: MXNetSGD(p, lr=0.1, momentum=0.9), w0)
    stepped_torch = _run(lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9), w0)
    np.testing.assert_allclose(stepped_ours[1], stepped_torch[1], rtol=1e-12)  # before the decay
    assert not np.allclose(stepped_ours[2], stepped_torch[2])  # PyTorch rescales the whole buffer at once


def test_built_from_the_config_name_with_the_original_groups_and_resumable():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv2d(4, 2, 1))
    optimizer = build_optimizer(model, "sgd_mxnet", lr=0.01, momentum=0.9, weight_decay=5e-4)
    assert isinstance(optimizer, MXNetSGD)
    assert sorted(g["weight_decay"] for g in optimizer.param_groups) == [0.0, 5e-4]  # biases: no decay
    model(torch.randn(1, 3, 8, 8)).sum().backward()
    optimizer.step()
    again = build_optimizer(model, "sgd_mxnet", lr=0.01, momentum=0.9, weight_decay=5e-4)
    again.load_state_dict(optimizer.state_dict())
    first = next(iter(model.parameters()))
    assert torch.equal(again.state[first]["momentum_buffer"], optimizer.state[first]["momentum_buffer"])
    with pytest.raises(ValueError, match="sgd_mxnet"):
        build_optimizer(model, "lion")
