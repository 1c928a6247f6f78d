"""Optimiser and learning-rate schedule with the original's per-parameter rules (spec 1.3 items 5, 8, 9)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import torch
from torch import nn

FREEZE_CHOICES = {
    "backbone": r"backbone\.",  # the base network; extras and heads train
    "all_but_heads": r"(?!.*_pred_conv\.)",  # everything but the loc / cls prediction convs
}
"""Named ``freeze`` settings beside ``"default"`` (the network's own choice) and a regular expression."""


def freeze_pattern(freeze: str | None, network_default: str | None) -> str | None:
    """The regular expression of a ``freeze`` setting: a name of :data:`FREEZE_CHOICES`, ``"default"``
    (``network_default``), None (nothing), or a regular expression as it is."""
    if freeze == "default":
        return network_default
    return FREEZE_CHOICES.get(freeze, freeze)


def freeze_parameters(model: nn.Module, pattern: str | None) -> list[str]:
    """Set ``requires_grad=False`` on parameters whose name matches ``pattern`` (anchored); returns the names."""
    if not pattern:
        return []
    regex = re.compile(pattern)
    frozen = []
    for name, parameter in model.named_parameters():
        if regex.match(name):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen


def parameter_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """The original's multipliers: weight decay only on conv/linear weights (not biases or BN), 0.1x on
    the L2-normalisation scales; 2x learning rate on the prediction-conv biases."""
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if name.endswith("_scale"):
            key = (lr, weight_decay * 0.1)
        elif parameter.ndim <= 1:  # biases, BatchNorm weights and biases
            key = (lr * 2 if name.endswith("_pred_conv.bias") else lr, 0.0)
        else:
            key = (lr, weight_decay)
        groups.setdefault(key, []).append(parameter)
    return [{"params": params, "lr": g_lr, "weight_decay": wd} for (g_lr, wd), params in groups.items()]


def build_optimizer(
    model: nn.Module, name: str = "sgd", lr: float = 0.002, momentum: float = 0.9, weight_decay: float = 5e-4
) -> torch.optim.Optimizer:
    groups = parameter_groups(model, lr, weight_decay)
    if not groups:
        raise ValueError("no trainable parameters (is everything frozen?)")
    if name == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=momentum)
    if name == "sgd_mxnet":
        from multibox.engine.mxnet_sgd import MXNetSGD

        return MXNetSGD(groups, lr=lr, momentum=momentum)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=lr)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd, sgd_mxnet or adamw")


def lr_multiplier(
    iteration: int,
    iterations_per_epoch: int,
    total_epochs: int,
    schedule: str = "step",
    steps: Sequence[int] = (80, 160),
    factor: float = 0.1,
    warmup_epochs: float = 0.0,
) -> float:
    """Learning-rate multiplier at ``iteration``: step decay at the given epochs (or cosine to 0), after a
    linear warm-up from 0."""
    epoch = iteration / max(1, iterations_per_epoch)
    if schedule == "step":
        value = factor ** sum(1 for s in steps if epoch >= s)
    elif schedule == "cosine":
        value = 0.5 * (1 + math.cos(math.pi * min(1.0, epoch / max(1e-9, total_epochs))))
    else:
        raise ValueError(f"unknown schedule {schedule!r}; choose step or cosine")
    if warmup_epochs > 0 and epoch < warmup_epochs:
        value *= epoch / warmup_epochs
    return value
