"""The hooks of every training step: learning-rate schedule, non-finite guard, stop conditions, epoch metrics and
the progress bar. (Those of the epoch's end, evaluation to TensorBoard, are in :mod:`multibox.engine.epoch_hooks`.)
"""

from __future__ import annotations

import sys
import time

import torch

from multibox.engine.train_logs import log
from multibox.engine.train_metrics import MultiBoxMetric
from multibox.engine.trainer import HookBase
from multibox.ops import smooth_l1


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/Inf losses or gradients too many times in a row."""


class LRSchedule(HookBase):
    """Steps a per-iteration ``scheduler`` after every optimiser step; its state is resumed with the run."""

    state_key = "scheduler"

    def __init__(self, scheduler: torch.optim.lr_scheduler.LRScheduler) -> None:
        self.scheduler = scheduler

    def after_step(self) -> None:
        if self.trainer.step_finite:
            self.scheduler.step()

    def state_dict(self) -> dict:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.scheduler.load_state_dict(state)


class NonFiniteGuard(HookBase):
    """Names the images of every skipped (non-finite) step; ``max_in_a_row`` of them in a row stop training."""

    def __init__(self, max_in_a_row: int) -> None:
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0

    def after_step(self) -> None:
        trainer = self.trainer
        if trainer.step_finite:
            self.in_a_row = 0
            return
        self.in_a_row += 1
        ids = ", ".join(trainer.image_name(i) for i in trainer.batch.indices)
        log(
            f"non-finite loss or gradient at epoch {trainer.epoch + 1} step {trainer.step}: skipped the step; "
            f"images {ids}",
            trainer.dist.rank,
        )
        if self.in_a_row >= self.max_in_a_row:
            raise NonFiniteLossError(
                f"{self.in_a_row} non-finite steps in a row (last images: {ids}); lower the learning rate, add "
                "warm-up (warmup_epochs), or check the data with `multibox data check`"
            )


class StopConditions(HookBase):
    """Ends training after ``max_iterations`` optimiser steps (mid-epoch; that epoch still ends normally) or at
    the end of the first epoch past ``time_limit`` seconds on any rank. Register it first: the other epoch-end
    hooks read ``trainer.last_epoch``."""

    def __init__(self, max_iterations: int | None = None, time_limit: float | None = None) -> None:
        self.max_iterations, self.time_limit = max_iterations, time_limit
        self.started = time.perf_counter()

    def before_train(self) -> None:
        self.started = time.perf_counter()

    def after_step(self) -> None:
        if self.max_iterations is not None and self.trainer.step >= self.max_iterations:
            self.trainer.end_epoch = self.trainer.stop_training = True

    def after_epoch(self) -> None:
        if self.time_limit is None:
            return
        time_up = time.perf_counter() - self.started >= self.time_limit
        if self.trainer.dist.any_rank(time_up):
            self.trainer.stop_training = True


class EpochMetrics(HookBase):
    """The epoch's CrossEntropy and SmoothL1 (the original's ``MultiBoxMetric``, averaged over all ranks), lr,
    images/s, seconds and the number of undecodable images, added to the epoch's history row."""

    def __init__(self) -> None:
        self.metric = MultiBoxMetric()
        self.seen, self.started = 0, time.perf_counter()

    def before_epoch(self) -> None:
        self.metric.reset()
        self.seen, self.started = 0, time.perf_counter()

    def after_step(self) -> None:
        if not self.trainer.step_finite:
            return
        out = self.trainer.outputs
        positive = out["loc_mask"] != 0  # smooth-L1 is zero elsewhere
        residual = out["loc_preds"].detach().reshape(positive.shape)[positive] - out["loc_target"][positive]
        self.metric.update(out["cls_preds"].detach(), out["cls_target"], smooth_l1(residual.float()))
        self.seen += self.trainer.batch.images.shape[0]

    def images_per_second(self) -> float:
        """All ranks' images per second so far this epoch."""
        return self.seen * self.trainer.dist.world_size / max(1e-9, time.perf_counter() - self.started)

    def after_epoch(self) -> None:
        trainer = self.trainer
        seconds = time.perf_counter() - self.started
        trainer.row.update(
            step=trainer.step,
            lr=float(trainer.optimizer.param_groups[0]["lr"]),
            **trainer.dist.reduce_metric(self.metric),
            samples_per_second=self.seen * trainer.dist.world_size / max(1e-9, seconds),
            seconds=seconds,
            skipped_images=len(trainer.skipped_images),
        )


class ProgressBar(HookBase):
    """A tqdm bar per epoch on rank 0 with the running losses and images/s (only on a terminal)."""

    def __init__(self, metrics: EpochMetrics) -> None:
        self.metrics = metrics
        self.bar = None

    def before_epoch(self) -> None:
        trainer = self.trainer
        if trainer.dist.rank != 0 or not sys.stderr.isatty():
            return
        from tqdm import tqdm

        self.bar = tqdm(
            total=len(trainer.loader),
            desc=f"epoch {trainer.epoch_text()}",
            unit="batch",
            leave=False,
        )

    def after_step(self) -> None:
        if self.bar is None:
            return
        self.bar.update(1)
        if self.trainer.step_finite:
            values = self.metrics.metric.compute()
            self.bar.set_postfix(
                CE=f"{values['CrossEntropy']:.3f}",
                L1=f"{values['SmoothL1']:.3f}",
                img_s=f"{self.metrics.images_per_second():.1f}",
            )

    def after_epoch(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    after_train = after_epoch
