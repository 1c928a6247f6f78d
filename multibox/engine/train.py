"""The training loop: one call (``train(config)``) runs or resumes a run and leaves checkpoints, logs and plots.

Every rank of a distributed run takes the same path: the same batches are skipped (non-finite losses, batches
whose images all failed to decode), precise BN runs on all ranks, evaluation runs on rank 0 without
collectives while the others wait, and the stop decision (time limit) is agreed over all ranks.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from multibox.engine.checkpoint import Checkpointer, network_description, rng_state, set_rng_state
from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
from multibox.engine.evaluate import evaluate
from multibox.engine.precise_bn import recompute_batchnorm_statistics
from multibox.engine.resume import find_resume_state
from multibox.engine.train_logs import TensorBoardLog, log, plot_history, write_csv
from multibox.engine.train_metrics import MultiBoxMetric
from multibox.engine.train_setup import (
    autocast_and_scaler,
    build_model,
    load_datasets,
    loss_module,
    optimizer_and_schedule,
    per_rank_batch_size,
    training_loader,
    validation_loader,
)
from multibox.ops import smooth_l1

__all__ = ["NonFiniteLossError", "TrainResult", "train"]


class NonFiniteLossError(RuntimeError):
    """Training produced NaN/Inf losses or gradients too many times in a row."""


@dataclass
class TrainResult:
    """Where the run wrote its files, the trained model, and the per-epoch history."""

    out_dir: Path
    checkpoint: Path | None
    model: torch.nn.Module | None = None
    class_names: list[str] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    final_metrics: dict = field(default_factory=dict)


@dataclass
class _EpochPass:
    """What one pass over the training data did."""

    seen: int  # images trained on (this rank)
    skipped: list[str]  # ids of images that could not be decoded
    seconds: float
    reached_max_iterations: bool


@dataclass
class _Run:
    """Everything one training run holds while its epochs go by."""

    config: TrainConfig
    dist: DistributedContext
    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    autocast: object
    scaler: object
    loader: object
    val_loader: object
    has_validation: bool
    train_set: object
    network: dict
    checkpointer: Checkpointer
    tensorboard: TensorBoardLog
    batch_size: int
    start_epoch: int = 0
    step: int = 0
    history: list[dict] = field(default_factory=list)
    nonfinite_in_a_row: int = 0
    started: float = field(default_factory=time.perf_counter)
    last_checkpoint: Path | None = None
    metric: MultiBoxMetric = field(default_factory=MultiBoxMetric)

    @property
    def out_dir(self) -> Path:
        return Path(self.config.out_dir)

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(self.dist.device, non_blocking=True)
        if self.config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run as ``config`` says; returns where everything was written."""
    config = config.checked()
    dist = DistributedContext.from_environment(config.device)
    run = _prepare(config, dist)
    try:
        for epoch in range(run.start_epoch, config.epochs):
            if _finish_epoch(run, epoch, _train_epoch(run, epoch)):
                break
    finally:
        run.tensorboard.close()
    dist.close()
    final = run.history[-1] if run.history else {}
    return TrainResult(
        run.out_dir, run.last_checkpoint, run.model, run.train_set.class_names, run.history, final
    )


def _prepare(config: TrainConfig, dist: DistributedContext) -> _Run:
    """Data, model, optimiser and loaders; the resume state loaded before the DDP wrap."""
    torch.manual_seed(config.seed + dist.rank)
    out_dir = Path(config.out_dir)
    if dist.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = load_datasets(config, dist.rank)
    class_names = train_set.class_names
    network = network_description(config.network, len(class_names), config.data_shape, config.network_options)
    model = build_model(config, len(class_names), dist.rank).to(dist.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    batch_size = per_rank_batch_size(config, dist.world_size)
    loader = training_loader(config, train_set, batch_size, dist.world_size, dist.rank)
    optimizer, scheduler = optimizer_and_schedule(config, model, max(1, len(loader)))
    autocast, scaler = autocast_and_scaler(config, dist.device)
    checkpointer = Checkpointer(out_dir / "checkpoints", keep_last=config.keep_last)
    resume_path, state = find_resume_state(config.resume, checkpointer, class_names, network, dist)
    has_validation = dist.all_ranks(val_set is not None)
    run = _Run(
        config=config,
        dist=dist,
        model=model,
        train_model=model,
        optimizer=optimizer,
        scheduler=scheduler,
        autocast=autocast,
        scaler=scaler,
        loader=loader,
        val_loader=validation_loader(config, val_set, batch_size)
        if has_validation and dist.rank == 0
        else None,
        has_validation=has_validation,
        train_set=train_set,
        network=network,
        checkpointer=checkpointer,
        tensorboard=TensorBoardLog(out_dir, config.tensorboard and dist.rank == 0),
        batch_size=batch_size,
        last_checkpoint=resume_path,
    )
    if state is not None:
        _restore(run, state, resume_path)
    run.train_model = dist.wrap(loss_module(config, model))  # DDP starts every rank from rank 0's weights
    if config.compile:
        run.train_model = torch.compile(run.train_model)
    return run


def _restore(run: _Run, state: dict, path: Path) -> None:
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    if run.scaler is not None and state.get("scaler"):
        run.scaler.load_state_dict(state["scaler"])
    run.start_epoch, run.step, run.history = state["epoch"], state["step"], list(state.get("history", []))
    set_rng_state(state["rng"])
    log(f"resumed from {path} (epoch {run.start_epoch}, step {run.step})", run.dist.rank)


def _progress(run: _Run, epoch: int):
    if run.dist.rank != 0:
        return run.loader
    from tqdm import tqdm

    return tqdm(
        run.loader,
        desc=f"epoch {epoch + 1}/{run.config.epochs}",
        unit="batch",
        leave=False,
        disable=not sys.stderr.isatty(),
    )


def _train_epoch(run: _Run, epoch: int) -> _EpochPass:
    """One pass over the training data."""
    run.loader.sampler.set_epoch(epoch)
    order = [index for index, _ in run.loader.sampler]
    run.model.train()
    run.metric.reset()
    seen, skipped = 0, []
    epoch_start = time.perf_counter()
    batches = _progress(run, epoch)
    for batch_index, (images, labels, indices) in enumerate(batches):  # training_loader gives indices
        indices = indices.tolist()
        expected = order[batch_index * run.batch_size :][: run.batch_size]
        skipped += [run.train_set[i].image_id for i in sorted(set(expected) - set(indices))]
        if not run.dist.all_ranks(images.shape[0] > 0):
            continue
        labels = labels.to(run.dist.device, non_blocking=True)
        if _step(run, run.prepare_images(images), labels, epoch, indices):
            seen += images.shape[0]
            if hasattr(batches, "set_postfix"):
                values = run.metric.compute()
                rate = seen * run.dist.world_size / max(1e-9, time.perf_counter() - epoch_start)
                batches.set_postfix(
                    CE=f"{values['CrossEntropy']:.3f}", L1=f"{values['SmoothL1']:.3f}", img_s=f"{rate:.1f}"
                )
        if run.config.max_iterations is not None and run.step >= run.config.max_iterations:
            return _EpochPass(seen, skipped, time.perf_counter() - epoch_start, True)
    return _EpochPass(seen, skipped, time.perf_counter() - epoch_start, False)


def _step(run: _Run, images: torch.Tensor, labels: torch.Tensor, epoch: int, indices: list[int]) -> bool:
    """One optimiser step; a non-finite loss or gradient on any rank skips it on every rank (returns False)."""
    with run.autocast:
        out = run.train_model(images, labels)
    run.optimizer.zero_grad(set_to_none=True)
    finite = run.dist.all_ranks(bool(torch.isfinite(out["loss"])))
    if finite:
        loss = out["loss"]
        (run.scaler.scale(loss) if run.scaler is not None else loss).backward()
        if run.scaler is not None:
            run.scaler.unscale_(run.optimizer)
        grads = [p for p in run.model.parameters() if p.grad is not None]
        finite = bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(grads, max_norm=math.inf)))
    if not finite:
        _skip_nonfinite_step(run, epoch, [run.train_set[i].image_id for i in indices])
        return False
    run.nonfinite_in_a_row = 0
    if run.scaler is not None:
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        run.optimizer.step()
    run.scheduler.step()
    run.step += 1
    positive = out["loc_mask"] != 0  # smooth-L1 is zero elsewhere
    residual = out["loc_preds"].detach().reshape(positive.shape)[positive] - out["loc_target"][positive]
    run.metric.update(out["cls_preds"].detach(), out["cls_target"], smooth_l1(residual.float()))
    return True


def _skip_nonfinite_step(run: _Run, epoch: int, ids: list[str]) -> None:
    run.nonfinite_in_a_row += 1
    log(
        f"non-finite loss or gradient at epoch {epoch + 1} step {run.step}: skipped the step; "
        f"images {', '.join(ids)}",
        run.dist.rank,
    )
    run.optimizer.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.update()
    if run.nonfinite_in_a_row >= run.config.max_nonfinite:
        raise NonFiniteLossError(
            f"{run.nonfinite_in_a_row} non-finite steps in a row (last images: {', '.join(ids)}); "
            "lower the learning rate, add warm-up (warmup_epochs), or check the data with "
            "`multibox data check`"
        )


def _finish_epoch(run: _Run, epoch: int, done: _EpochPass) -> bool:
    """Epoch metrics, precise BN, evaluation, the history row, checkpoint and logs; returns whether to stop."""
    config, dist = run.config, run.dist
    values = dist.reduce_metric(run.metric)
    row = {
        "epoch": epoch + 1,
        "step": run.step,
        "lr": float(run.optimizer.param_groups[0]["lr"]),
        **values,
        "samples_per_second": done.seen * dist.world_size / max(1e-9, done.seconds),
        "seconds": done.seconds,
        "skipped_images": len(done.skipped),
    }
    time_up = config.time_limit is not None and time.perf_counter() - run.started >= config.time_limit
    time_up = dist.any_rank(time_up)
    stop = done.reached_max_iterations or time_up
    last_epoch = epoch + 1 == config.epochs or stop
    evaluate_now = run.has_validation and ((epoch + 1) % config.val_interval == 0 or last_epoch)
    if config.precise_bn_batches > 0 and (evaluate_now or last_epoch):
        # running BatchNorm averages lag behind fast-moving weights: recompute them (precise_bn.py)
        recompute_batchnorm_statistics(run.model, run.loader, config.precise_bn_batches, run.prepare_images)
    if evaluate_now and dist.rank == 0:
        row.update(_evaluate(run))
    row = dist.broadcast_object(row)
    _report(run, row, done.skipped)
    run.history.append(row)
    if dist.rank == 0:
        _save(run, row)
    dist.barrier()
    return stop


def _evaluate(run: _Run) -> dict:
    result = evaluate(run.model, run.val_loader, run.train_set.class_names, run.dist.device)
    if result.get("excluded"):
        log(
            f"excluded {len(result['excluded'])} undecodable images from the score: {', '.join(result['excluded'])}"
        )
    return {"mAP_voc07": float(result["mAP_voc07"]), "mAP_area": float(result["mAP_area"])}


def _report(run: _Run, row: dict, skipped: list[str]) -> None:
    """The epoch's line on stderr (rank 0), with its speed and, when there were any, the skipped images."""
    message = (
        f"epoch {row['epoch']}/{run.config.epochs}  CrossEntropy={row['CrossEntropy']:.4f}  "
        f"SmoothL1={row['SmoothL1']:.4f}  lr={row['lr']:.2e}  "
        f"{row['samples_per_second']:.1f} img/s  {row['seconds']:.0f}s"
    )
    if row.get("mAP_voc07") is not None:
        message += f"  mAP(VOC07)={row['mAP_voc07']:.4f}  mAP(area)={row['mAP_area']:.4f}"
    if skipped:
        shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
        message += f"  skipped {len(skipped)} undecodable images ({shown})"
    log(message, run.dist.rank)


def _save(run: _Run, row: dict) -> None:
    state = {
        "model": run.model.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "scheduler": run.scheduler.state_dict(),
        "scaler": run.scaler.state_dict() if run.scaler is not None else None,
        "epoch": row["epoch"],
        "step": run.step,
        "rng": rng_state(),
        "config": run.config.to_dict(),
        "class_names": list(run.train_set.class_names),
        "history": run.history,
        "network": run.network,
        "detection": run.model.detection.to_dict(),
    }
    run.last_checkpoint = run.checkpointer.save(state, row["epoch"], metric=row.get("mAP_voc07"))
    write_csv(run.out_dir / "log.csv", run.history)
    plot_history(run.out_dir, run.history)
    run.tensorboard.add_row(row)
