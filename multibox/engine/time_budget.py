"""Training for a wall-clock budget: the schedule follows the fraction of the budget used, measured as it goes.

A run with ``time_budget`` seconds has no fixed number of epochs. After every step :class:`TimeBudget`
measures the time used so far (resumed runs add what they had used) and what the end of the run will still
cost (the last evaluation, precise BN, checkpoint: the longest epoch end seen so far, or an estimate from the
measured training speed before one is seen). ``progress`` is the first over the budget less the second (never
decreasing), so
warm-up and the learning-rate schedule stretch over the budget however fast the machine is, and training
stops, mid-epoch if need be, when ``progress`` reaches 1: the run ends at its final learning rate with the
last evaluation inside the budget.
"""

from __future__ import annotations

import time

from multibox.engine.train_logs import log
from multibox.engine.trainer import HookBase


class TimeBudget(HookBase):
    """Progress through a ``budget`` of seconds; stops training when it is used.

    Args:
        budget: seconds for the whole run (training, evaluations, checkpoints).
        end_images: images the run's end processes besides training steps (validation images plus the
            precise-BN batches), for the estimate of its cost before one epoch end has been measured.
        end_seconds: the rest of that estimate (writing the checkpoint, plots and pictures).
        clock: seconds now (``time.perf_counter``; tests pass a fake).
    """

    state_key = "time_budget"

    def __init__(
        self, budget: float, end_images: int = 0, end_seconds: float = 2.0, clock=time.perf_counter
    ) -> None:
        self.budget, self.end_images, self.end_seconds, self.clock = (
            float(budget),
            end_images,
            end_seconds,
            clock,
        )
        self.used_before = 0.0  # seconds used by the run before a resume
        self.started = clock()
        self.images = 0  # trained this session, for the speed estimate
        self.training_seconds = 0.0
        self.longest_end = 0.0  # the longest epoch end (hooks after the last step) measured
        self.longest_evaluated_end = 0.0  # ... of the epochs that evaluated (the run's end always does)
        self.step_started = self.epoch_steps_ended = None
        self.progress = 0.0

    def used(self) -> float:
        return self.used_before + self.clock() - self.started

    def reserve(self) -> float:
        """Seconds kept for the run's end, at most half the budget: the longest epoch end with an evaluation
        measured, or before one the longer of the longest end measured and :meth:`estimated_end`."""
        if self.longest_evaluated_end > 0:
            return min(0.5 * self.budget, self.longest_evaluated_end)
        return min(0.5 * self.budget, max(self.longest_end, self.estimated_end()))

    def estimated_end(self) -> float:
        """The run's end before one with an evaluation has been measured: ``end_seconds`` plus, per end image,
        a quarter of a training image's time (a forward pass without backward) and 4 ms (decoding, NMS,
        scoring); picked to match the ends seen on 2 CPU cores for the default EfficientNet-Lite0 at 320 and
        for the quick start's tiny SSD, whose per-image costs differ fivefold."""
        if not self.images or self.training_seconds <= 0:
            return 0.0
        per_image = 0.25 * self.training_seconds / self.images + 0.004
        return self.end_seconds + self.end_images * per_image

    def before_train(self) -> None:
        self.started = self.clock()

    def before_epoch(self) -> None:
        if self.epoch_steps_ended is not None:
            seconds = self.clock() - self.epoch_steps_ended
            self.longest_end = max(self.longest_end, seconds)
            history = self.trainer.history
            if history and history[-1].get("mAP_voc07") is not None:
                self.longest_evaluated_end = max(self.longest_evaluated_end, seconds)
            self.epoch_steps_ended = None

    def before_step(self) -> None:
        self.step_started = self.clock()

    def after_step(self) -> None:
        now = self.clock()
        if self.step_started is not None and self.trainer.batch is not None:
            self.training_seconds += now - self.step_started
            self.images += int(self.trainer.batch.images.shape[0])
        fraction = self.used() / max(1e-9, self.budget - self.reserve())
        self.progress = min(1.0, max(self.progress, fraction))  # the schedule never runs backwards
        if self.trainer.dist.any_rank(self.progress >= 1.0):  # every rank leaves at the same step
            self.trainer.end_epoch = self.trainer.stop_training = True
        self.epoch_steps_ended = now

    def after_epoch(self) -> None:
        self.trainer.row["budget_used"] = round(self.progress, 4)

    def after_train(self) -> None:
        if self.trainer.stop_training and self.progress >= 1.0:
            log(
                f"time budget {self.budget:.0f} s: used {self.used():.0f} s "
                f"({self.trainer.epoch} epochs, {self.trainer.step} steps)",
                self.trainer.dist.rank,
            )

    def state_dict(self) -> dict:
        return {
            "used": self.used(),
            "longest_end": self.longest_end,
            "longest_evaluated_end": self.longest_evaluated_end,
            "progress": self.progress,
        }

    def load_state_dict(self, state: dict) -> None:
        self.used_before = float(state.get("used", 0.0))
        self.longest_end = float(state.get("longest_end", 0.0))
        self.longest_evaluated_end = float(state.get("longest_evaluated_end", 0.0))
        self.progress = float(state.get("progress", 0.0))
        self.started = self.clock()
