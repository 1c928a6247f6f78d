"""The time budget: progress by measured time, the reserve for the run's end, the schedule stretched over the
budget, stopping at its end, resume; on the toy trainer of test_trainer with a fake clock."""

from __future__ import annotations

import math

import pytest
import torch

from multibox.engine.hooks import LRSchedule
from multibox.engine.optim import lr_multiplier
from multibox.engine.time_budget import TimeBudget
from multibox.engine.trainer import HookBase
from tests.engine.test_trainer import IMAGES, SquaredError, ToyLoader, Watch


class FakeClock:
    """Seconds that only move when told: ``step_seconds`` per training step (advanced by a hook)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tick(HookBase):
    """Registered before the budget: makes every step take ``seconds`` (the clock moves before the budget's
    ``after_step`` reads it) and every epoch's end ``end_seconds`` (an evaluation)."""

    def __init__(self, clock: FakeClock, seconds: float, end_seconds: float = 0.0) -> None:
        self.clock, self.seconds, self.end_seconds = clock, seconds, end_seconds

    def after_step(self) -> None:
        self.clock.now += self.seconds

    def after_epoch(self) -> None:
        self.clock.now += self.end_seconds


def _budgeted(budget: TimeBudget, clock: FakeClock, seconds: float, end_seconds: float = 0.0, epochs=10):
    from multibox.engine.distributed import DistributedContext
    from multibox.engine.trainer import Trainer

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    steps_per_epoch = IMAGES // ToyLoader.batch_size

    def multiplier(it: int) -> float:  # cosine over `epochs` schedule epochs, stretched over the budget
        return lr_multiplier(budget.progress * epochs * steps_per_epoch, steps_per_epoch, epochs, "cosine")

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, multiplier)
    hooks = [Tick(clock, seconds, end_seconds), budget, LRSchedule(scheduler)]
    trainer = Trainer(
        model, SquaredError(model), optimizer, ToyLoader(), DistributedContext(), None, hooks=hooks
    )
    return trainer, optimizer


def test_progress_is_time_used_over_the_budget_and_training_stops_at_its_end():
    clock = FakeClock()
    budget = TimeBudget(30.0, end_images=0, end_seconds=0.0, clock=clock)
    trainer, optimizer = _budgeted(budget, clock, seconds=1.0)
    lrs = []
    trainer.register(Watch(lambda trainer: lrs.append(optimizer.param_groups[0]["lr"])))
    trainer.train()
    # 1 s per step: step k ends at k seconds; with nothing to evaluate (no reserve) training stops at 30 s
    assert trainer.step == 30 and trainer.epoch == 10
    assert budget.progress == 1.0
    # after step k the schedule reads progress k/30: cosine over 10 schedule epochs = over the 30 s
    for k, lr in enumerate(lrs, start=1):
        assert lr == pytest.approx(0.5 * (1 + math.cos(math.pi * k / 30)), abs=1e-9)
    assert lrs[-1] == pytest.approx(0.0, abs=1e-12)  # it ends at its final learning rate


def test_a_slower_machine_takes_fewer_steps_and_still_ends_its_schedule():
    clock = FakeClock()
    budget = TimeBudget(30.0, end_seconds=0.0, clock=clock)
    trainer, optimizer = _budgeted(budget, clock, seconds=2.5)
    trainer.train()
    # 2.5 s per step: step 12 ends at 30 s, mid-epoch (epoch 4 of 3 steps each)
    assert trainer.step == 12 and budget.progress == 1.0
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_the_measured_epoch_end_is_kept_in_reserve():
    clock = FakeClock()
    budget = TimeBudget(30.0, end_seconds=0.0, clock=clock)
    trainer, _ = _budgeted(budget, clock, seconds=1.0, end_seconds=4.0)
    trainer.train()
    # Epochs of 3 steps of 1 s, then 4 s of epoch end: epochs end at 7, 14, 21 and 28 s. Once the first end is
    # measured the reserve is 4 s, so steps stop when the time used reaches 30 - 4 = 26 s. The steps of epoch 4
    # end at 22, 23 and 24 s (progress < 1); the first step of epoch 5 ends at 29 s: training stops after step
    # 13 (a toy whose epoch end is longer than the gap left; a real run checks after every short step).
    assert trainer.step == 13
    assert budget.reserve() == pytest.approx(4.0)


def test_before_an_epoch_end_is_measured_the_reserve_is_estimated_from_the_training_speed():
    clock = FakeClock()
    budget = TimeBudget(100.0, end_images=40, end_seconds=2.0, clock=clock)
    budget.images, budget.training_seconds = 20, 10.0  # 2 images/s of training
    # an end image costs a quarter of a training image (0.5 s) plus 4 ms: 2 + 40 * (0.125 + 0.004) = 7.16 s
    assert budget.reserve() == pytest.approx(7.16)
    budget.end_images = 1_000_000
    assert budget.reserve() == pytest.approx(50.0)  # never more than half the budget


def test_progress_never_goes_back_and_a_resume_continues_from_the_time_used():
    clock = FakeClock()
    budget = TimeBudget(30.0, end_seconds=0.0, clock=clock)
    trainer, _ = _budgeted(budget, clock, seconds=1.0)
    trainer.register(Watch(lambda trainer: setattr(trainer, "stop_training", trainer.step >= 9)))
    trainer.train()
    state = budget.state_dict()
    assert state["used"] == pytest.approx(9.0) and state["progress"] == pytest.approx(0.3)

    clock2 = FakeClock()
    clock2.now = 1000.0  # a new process: its own clock
    resumed = TimeBudget(30.0, end_seconds=0.0, clock=clock2)
    trainer2, _ = _budgeted(resumed, clock2, seconds=1.0)
    resumed.trainer = trainer2
    resumed.load_state_dict(state)
    assert resumed.used() == pytest.approx(9.0) and resumed.progress == pytest.approx(0.3)
    trainer2.train()
    assert trainer2.step == 21  # the remaining 21 s at 1 s per step


class EvaluateEvery(HookBase):
    """Every ``period``-th epoch 'evaluates': its history row gets a mAP and its end takes ``seconds``; the
    other epochs' ends take 1 s."""

    def __init__(self, clock: FakeClock, period: int, seconds: float) -> None:
        self.clock, self.period, self.seconds = clock, period, seconds

    def after_epoch(self) -> None:
        evaluated = (self.trainer.epoch + 1) % self.period == 0
        self.clock.now += self.seconds if evaluated else 1.0
        self.trainer.history.append({"mAP_voc07": 0.5 if evaluated else None})


def test_the_reserve_is_the_end_with_an_evaluation_once_one_is_measured():
    clock = FakeClock()
    budget = TimeBudget(1000.0, end_images=100, end_seconds=0.0, clock=clock)
    trainer, _ = _budgeted(budget, clock, seconds=1.0)
    trainer.register(EvaluateEvery(clock, period=3, seconds=6.0))
    reserves = Watch(lambda trainer: budget.reserve(), at="before_epoch")
    trainer.register(reserves)
    trainer.register(
        Watch(lambda trainer: setattr(trainer, "stop_training", trainer.epoch >= 5), "after_epoch")
    )
    trainer.train()
    # before any end: the estimate, 100 end images * (0.25 * 0.5 s + 4 ms) = 12.9 s (steps of 2 images in 1 s);
    # after epochs 1 and 2
    # (plain ends of 1 s) still the estimate, the longer; after epoch 3's evaluated end of 6 s: 6 s, although
    # shorter than the estimate and however short the plain ends after it
    assert reserves.seen == pytest.approx([0.0, 12.9, 12.9, 6.0, 6.0, 6.0])
