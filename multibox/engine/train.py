"""``train(config)``: one call runs (or resumes) a training run and leaves checkpoints, logs and plots.

It builds the parts (:mod:`multibox.engine.train_setup`), a :class:`~multibox.engine.trainer.Trainer` and the
standard hooks (:func:`standard_hooks`); Python users add their own with ``train(config, hooks=[...])``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
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
    """Run (or resume) one training run as ``config`` says, with ``hooks`` after the standard ones."""
    config = config.checked()
    dist = DistributedContext.from_environment(config.device)
    parts = build_parts(config, dist)
    trainer = Trainer(
        parts.model,
        parts.train_model,
        parts.optimizer,
        parts.loader,
        dist,
        config.epochs,
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


def standard_hooks(config: TrainConfig, parts: TrainingParts) -> list[HookBase]:
    """The hooks ``train`` registers, in the order they run: stop conditions first (the epoch-end hooks read
    ``trainer.last_epoch``), the step hooks, then precise BN, evaluation, report, checkpoint, logs."""
    metrics = EpochMetrics()
    class_names = parts.train_set.class_names
    return [
        StopConditions(config.max_iterations, config.time_limit),
        LRSchedule(parts.scheduler),
        NonFiniteGuard(config.max_nonfinite),
        metrics,
        ProgressBar(metrics),
        PreciseBN(config.precise_bn_batches, config.val_interval, parts.has_validation),
        *([Evaluation(parts.val_loader, class_names, config.val_interval)] if parts.has_validation else []),
        EpochReport(),
        Checkpointing(parts.checkpointer, config.resume, class_names, parts.network, config.to_dict()),
        CsvAndPlots(Path(config.out_dir)),
        *([TensorBoard(Path(config.out_dir))] if config.tensorboard else []),
    ]
