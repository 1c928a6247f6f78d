"""An exponential moving average (EMA) of the weights, kept beside them during training.

After every optimiser step ``average <- average + (1 - d) (weights - average)`` over every floating-point
parameter and buffer, with ``d = min(decay, (1 + n) / (10 + n))`` after ``n`` updates: the average spans about
the last ninth of the steps taken (early weights are forgotten quickly) until ``decay`` caps it, so short runs
average over a sensible window without tuning. Evaluation scores both the weights and their average; the
checkpoint keeps both and names the better one as the weights to detect with (``inference_weights``).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from multibox.engine.trainer import HookBase


class WeightAverage:
    """The EMA of ``model``'s floating-point parameters and buffers, as a model of its own (eval mode)."""

    def __init__(self, model: nn.Module, decay: float = 0.9995) -> None:
        self.model = copy.deepcopy(model).eval()
        self.model.requires_grad_(False)
        self.decay, self.updates = decay, 0

    def current_decay(self) -> float:
        """The ``d`` of the next update: ``(1 + n) / (10 + n)`` capped at ``decay``."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step towards ``model``'s current weights (integer buffers are copied)."""
        weight = 1.0 - self.current_decay()
        averaged, current = [], []
        own = self.model.state_dict()
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                averaged.append(own[name])
                current.append(value.detach())
            else:
                own[name].copy_(value)
        torch._foreach_lerp_(averaged, current, weight)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.updates = int(state["updates"])


class EMA(HookBase):
    """Keeps a :class:`WeightAverage` of ``trainer.model``, updated after every optimiser step taken; resumed
    with the run (checkpoint key ``ema``)."""

    state_key = "ema"

    def __init__(self, decay: float = 0.9995) -> None:
        self.decay = decay
        self.average: WeightAverage | None = None

    def before_train(self) -> None:
        if self.average is None:
            self.average = WeightAverage(self.trainer.model, self.decay)

    @property
    def model(self) -> nn.Module:
        return self.average.model

    def after_step(self) -> None:
        if self.trainer.step_finite:
            self.average.update(self.trainer.model)

    def state_dict(self) -> dict:
        return self.average.state_dict()

    def load_state_dict(self, state: dict) -> None:
        if self.average is None:
            self.average = WeightAverage(self.trainer.model, self.decay)
        self.average.load_state_dict(state)
