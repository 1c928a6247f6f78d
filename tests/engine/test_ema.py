"""The weight average: the update rule by hand, its decay ramp, integer buffers, resume, and the hook."""

from __future__ import annotations

import pytest
import torch

from multibox.engine.ema import EMA, WeightAverage
from multibox.engine.hooks import StopConditions
from tests.engine.test_trainer import Watch, _trainer


def test_the_decay_ramps_as_one_plus_n_over_ten_plus_n_up_to_its_cap():
    average = WeightAverage(torch.nn.Linear(1, 1), decay=0.9)
    expected = [1 / 10, 2 / 11, 3 / 12]
    for d in expected:
        assert average.current_decay() == pytest.approx(d)
        average.updates += 1
    average.updates = 1000  # (1001 / 1010) > 0.9: the cap
    assert average.current_decay() == pytest.approx(0.9)


def test_updates_follow_the_rule_by_hand_and_integer_buffers_are_copied():
    model = torch.nn.BatchNorm1d(1)
    with torch.no_grad():
        model.weight.fill_(1.0)
    average = WeightAverage(model, decay=0.99)
    # weights 1 -> 3 -> 5 after steps; averages: a1 = 1 + (1 - 1/10)(3 - 1) = 2.8,
    # a2 = 2.8 + (1 - 2/11)(5 - 2.8) = 2.8 + 0.8181818 * 2.2 = 4.6
    for value in (3.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        model.num_batches_tracked += 7
        average.update(model)
    assert average.model.weight.item() == pytest.approx(4.6, rel=1e-6)
    assert int(average.model.num_batches_tracked) == 14  # copied, not averaged
    assert not any(p.requires_grad for p in average.model.parameters())


def test_the_hook_averages_every_step_taken_and_resumes():
    ema = EMA(decay=0.5)
    trainer = _trainer(epochs=1, lr=0.1, hooks=[StopConditions(max_iterations=2), ema])
    start = trainer.model.weight.item()
    weights = []
    trainer.register(Watch(lambda trainer: weights.append(trainer.model.weight.item())))
    trainer.train()
    w1, w2 = weights
    # d = min(0.5, 1/10) then min(0.5, 2/11): a1 = s + 0.9 (w1 - s); a2 = a1 + (9/11)(w2 - a1)
    a1 = start + 0.9 * (w1 - start)
    a2 = a1 + (9 / 11) * (w2 - a1)
    assert ema.model.weight.item() == pytest.approx(a2, rel=1e-6)
    state = ema.state_dict()
    assert state["updates"] == 2

    again = EMA(decay=0.5)
    other = _trainer(epochs=1, hooks=[again])
    again.load_state_dict(state)  # as the checkpoint hook does before training
    other.train()
    assert again.average.updates == 2 + 3  # resumed count plus the 3 steps of the new epoch
