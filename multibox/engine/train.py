"""``train(config)``: one call runs (or resumes) a training run and leaves checkpoints, logs and plots.

It builds the parts (:mod:`multibox.engine.train_setup`), a :class:`~multibox.engine.trainer.Trainer` and the
standard hooks (:func:`standard_hooks`); Python users add their own with ``train(config, hooks=[...])``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from multibox.checkpoint import read_checkpoint
from multibox.engine.batch_grid_hook import BatchGridHook
from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
from multibox.engine.ema import EMA
from multibox.engine.epoch_hooks import (
    Checkpointing,
    CsvAndPlots,
    EpochReport,
    Evaluation,
    PreciseBN,
    TensorBoard,
)
from multibox.engine.hooks import (
    EpochMetrics,
    LRSchedule,
    NonFiniteGuard,
    NonFiniteLossError,
    ProgressBar,
    StopConditions,
)
from multibox.engine.multi_scale import MultiScale
from multibox.engine.recipes import resolve_recipe
from multibox.engine.threads import ThreadBudget
from multibox.engine.time_budget import TimeBudget
from multibox.engine.train_logs import log
from multibox.engine.train_setup import TrainingParts, build_parts
from multibox.engine.trainer import HookBase, Trainer

__all__ = ["NonFiniteLossError", "TrainResult", "standard_hooks", "train"]


@dataclass
class TrainResult:
    """Where the run wrote its files, the trained model, and the per-epoch history."""

    out_dir: Path
    checkpoint: Path | None
    model: torch.nn.Module | None = None
    class_names: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    final_metrics: dict = field(default_factory=dict)


def train(config: TrainConfig, hooks: Sequence[HookBase] = ()) -> TrainResult:
    """Run (or resume) one training run as ``config`` says, with ``hooks`` after the standard ones.

    Settings left open take the recipe's values (:mod:`multibox.engine.recipes`); every resolved choice is
    printed and the whole resolved config is written to ``out_dir/config.yaml``."""
    config = config.checked()
    dist = DistributedContext.from_environment(config.device)
    source = read_checkpoint(config.finetune) if config.finetune else None  # read once, for both below
    parts = build_parts(resolved_config(config, dist, source), dist, source)
    config = parts.config
    write_config(config, dist.rank)
    trainer = Trainer(
        parts.model,
        parts.train_model,
        parts.optimizer,
        parts.loader,
        dist,
        None if config.time_budget else config.epochs,
        image_ids=[record.image_id for record in parts.train_set],
        autocast=parts.autocast,
        scaler=parts.scaler,
        channels_last=config.channels_last,
    )
    standard = standard_hooks(config, parts)
    trainer.register(*standard, *hooks)
    trainer.train()
    dist.close()
    checkpointing = next(hook for hook in standard if isinstance(hook, Checkpointing))
    final = trainer.history[-1] if trainer.history else {}
    return TrainResult(
        Path(config.out_dir),
        checkpointing.last,
        parts.model,
        parts.train_set.class_names,
        trainer.history,
        final,
    )


def resolved_config(config: TrainConfig, dist: DistributedContext, source: dict | None = None) -> TrainConfig:
    """``config`` with its recipe applied (``source``: the ``finetune`` checkpoint, whose network a fine-tune
    takes), logged setting by setting."""
    finetuned = source["network"] if source is not None else None
    config, lines = resolve_recipe(config.checked(), dist.device, finetuned)
    for line in lines:
        log(line, dist.rank)
    return config


def write_config(config: TrainConfig, rank: int) -> None:
    """``out_dir/config.yaml``: every setting of the run as it trains (recipe, fine-tune and fitted anchors
    applied), to read or to train again with."""
    import yaml

    if rank == 0:
        text = yaml.safe_dump(config.to_dict(), sort_keys=False)
        (Path(config.out_dir) / "config.yaml").write_text(
            "# the resolved settings of this run (multibox train)\n" + text
        )


def standard_hooks(config: TrainConfig, parts: TrainingParts) -> list[HookBase]:
    """The hooks ``train`` registers, in the order they run: stop conditions and the time budget first (the
    epoch-end hooks read ``trainer.last_epoch``; the schedule reads the budget's progress), the step hooks,
    then precise BN, evaluation, report, checkpoint, logs, and the weight average (created after a resume)."""
    metrics = EpochMetrics()
    class_names = parts.train_set.class_names
    ema = EMA(config.ema_decay) if config.ema else None
    period = evaluation_period(config, parts.time_budget)
    return [
        ThreadBudget(config.threads),
        StopConditions(config.max_iterations, config.time_limit),
        *([parts.time_budget] if parts.time_budget is not None else []),
        LRSchedule(parts.scheduler),
        *([MultiScale(config.multi_scale, config.seed)] if config.multi_scale else []),
        NonFiniteGuard(config.max_nonfinite),
        metrics,
        ProgressBar(metrics),
        PreciseBN(config.precise_bn_batches, period, parts.has_validation, ema),
        *(
            [Evaluation(parts.val_loader, class_names, period, ema, Path(config.out_dir))]
            if parts.has_validation
            else []
        ),
        EpochReport(),
        Checkpointing(parts.checkpointer, config.resume, class_names, parts.network, config.to_dict(), ema),
        CsvAndPlots(Path(config.out_dir)),
        *([TensorBoard(Path(config.out_dir))] if config.tensorboard else []),
        *([ema] if ema is not None else []),
        BatchGridHook(Path(config.out_dir), class_names),
    ]


def evaluation_period(config: TrainConfig, budget: TimeBudget | None):
    """Epochs between evaluations: ``val_interval``; by default every epoch for runs of up to 10 epochs, else
    about ten evaluations a run. A budgeted run measures its epochs and evaluations as it goes: evaluations a
    tenth of the budget apart, and far enough apart that they take at most a tenth of the training time."""
    if config.val_interval is not None:
        return config.val_interval
    if budget is None:
        return max(1, config.epochs // 10)

    def every() -> int:  # the epochs so far, this one included (its training seconds are in its row)
        rows = [*budget.trainer.history, budget.trainer.row]
        epoch = max(1e-9, sum(row.get("seconds", 0.0) for row in rows) / len(rows))
        evaluation = budget.longest_evaluated_end or budget.estimated_end()  # measured once one has run
        return max(1, round(0.1 * budget.budget / epoch), math.ceil(10 * evaluation / epoch))

    return every
