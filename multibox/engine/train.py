"""The training loop: data, model, optimiser, checkpoints, evaluation, logs and plots for one run."""

from __future__ import annotations

import csv
import math
import os
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import torch

from multibox.data import TrainAugmentation, check_dataset, clean_for_training, load_dataset, make_loader
from multibox.engine.checkpoint import Checkpointer, rng_state, set_rng_state
from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
from multibox.engine.evaluate import evaluate
from multibox.engine.optim import DEFAULT_FREEZE, build_optimizer, freeze_parameters, lr_multiplier
from multibox.engine.precise_bn import recompute_batchnorm_statistics
from multibox.engine.train_metrics import MultiBoxMetric
from multibox.model import build_ssd
from multibox.ops import smooth_l1


class SSDLoss(torch.nn.Module):
    """``model.loss`` as a module's forward, so DistributedDataParallel sees (and syncs) the backward."""

    def __init__(self, model: torch.nn.Module, **loss_options) -> None:
        super().__init__()
        self.model = model
        self.loss_options = loss_options

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(images, labels, **self.loss_options)


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


def _log(message: str, rank: int = 0) -> None:
    if rank == 0:
        print(message, file=sys.stderr, flush=True)


def _load_datasets(config: TrainConfig, rank: int):
    train_set = load_dataset(config.train_data, config.train_split, class_names=config.class_names)
    report = check_dataset(train_set, images=True, decode=False)
    train_set, summary = clean_for_training(train_set, report)
    _log(f"train data {summary}", rank)
    val_set = None
    source = config.val_data or config.train_data
    if config.val_split is not None or config.val_data:
        try:
            val_set = load_dataset(source, config.val_split, class_names=train_set.class_names)
        except FileNotFoundError as error:
            _log(f"no validation data ({error}); training without evaluation", rank)
    if val_set is not None:
        val_set, summary = clean_for_training(val_set, check_dataset(val_set, images=True, decode=False))
        _log(f"val data {summary}", rank)
    return train_set, val_set


def _autocast(config: TrainConfig, device: torch.device):
    if not config.amp:
        return nullcontext(), None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16), None
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16), None


def _write_csv(path: Path, rows: list[dict]) -> None:
    keys = list(dict.fromkeys(k for row in rows for k in row))
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def _plot_history(out_dir: Path, history: list[dict]) -> None:
    from multibox.viz import plot_curves

    losses = {
        name: [(row["epoch"], row[name]) for row in history if name in row]
        for name in ("CrossEntropy", "SmoothL1")
    }
    plot_curves(losses, out_dir / "loss.png", title="training loss (epoch averages)")
    maps = {
        name: [(row["epoch"], row[name]) for row in history if row.get(name) is not None]
        for name in ("mAP_voc07", "mAP_area")
    }
    if any(maps.values()):
        plot_curves(maps, out_dir / "map.png", title="validation mAP")


def train(config: TrainConfig) -> TrainResult:
    """Run (or resume) one training run as ``config`` says; returns where everything was written."""
    dist = DistributedContext.from_environment(config.device)
    device, rank = dist.device, dist.rank
    torch.manual_seed(config.seed + rank)
    out_dir = Path(config.out_dir)
    if rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    train_set, val_set = _load_datasets(config, rank)
    class_names = train_set.class_names

    model = build_ssd(
        config.network,
        len(class_names),
        config.data_shape,
        weights_backbone=config.weights_backbone,
        **config.network_options,
    )
    freeze = DEFAULT_FREEZE.get(config.network) if config.freeze == "default" else config.freeze
    frozen = freeze_parameters(model, freeze)
    if frozen:
        _log(f"frozen {len(frozen)} parameter tensors matching {freeze!r}", rank)
    model.to(device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    loss_module = SSDLoss(
        model,
        negative_mining_ratio=config.negative_mining_ratio,
        minimum_negative_samples=config.minimum_negative_samples,
        normalization=config.loss_normalization,
    )
    train_model = dist.wrap(loss_module)
    if config.compile:
        train_model = torch.compile(train_model)

    global_batch = config.batch_size
    per_rank_batch = max(1, global_batch // dist.world_size)
    lr = config.lr * (global_batch / 32 if config.scale_lr else 1.0)
    optimizer = build_optimizer(model, config.optimizer, lr, config.momentum, config.weight_decay)
    loader = make_loader(
        train_set,
        per_rank_batch,
        train=True,
        data_shape=config.data_shape,
        transform=TrainAugmentation(data_shape=(config.data_shape, config.data_shape), **config.augmentation),
        num_workers=config.num_workers,
        seed=config.seed,
        normalize=False,
        drop_last=len(train_set) >= per_rank_batch * dist.world_size,
        num_replicas=dist.world_size,
        rank=rank,
    )
    val_loader = None
    if val_set is not None and rank == 0:
        val_loader = make_loader(
            val_set,
            per_rank_batch,
            train=False,
            data_shape=config.data_shape,
            num_workers=config.num_workers,
            normalize=False,
        )
    iterations_per_epoch = max(1, len(loader))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_multiplier(
            it,
            iterations_per_epoch,
            config.epochs,
            config.schedule,
            config.lr_steps,
            config.lr_factor,
            config.warmup_epochs,
        ),
    )
    autocast, scaler = _autocast(config, device)

    checkpointer = Checkpointer(out_dir / "checkpoints", keep_last=config.keep_last)
    start_epoch, step, history = 0, 0, []
    resume_from = None
    if config.resume == "auto":
        resume_from = checkpointer.latest()
    elif config.resume and config.resume != "none":
        resume_from = Path(config.resume)
    if resume_from is not None:
        state = torch.load(resume_from, map_location="cpu", weights_only=False)
        if state.get("class_names") != class_names or state.get("network", {}).get("name") != config.network:
            raise ValueError(
                f"{resume_from} was trained as {state.get('network', {}).get('name')} on classes "
                f"{state.get('class_names')}, this run is {config.network} on {class_names}: use another out_dir "
                "or resume=none"
            )
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if scaler is not None and state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        start_epoch, step, history = state["epoch"], state["step"], state.get("history", [])
        set_rng_state(state["rng"])
        _log(f"resumed from {resume_from} (epoch {start_epoch}, step {step})", rank)

    writer = None
    if config.tensorboard and rank == 0:
        try:
            from torch.utils.tensorboard import SummaryWriter

            writer = SummaryWriter(str(out_dir / "tensorboard"))
        except ImportError:
            writer = None

    metric = MultiBoxMetric()
    nonfinite_in_a_row = 0
    started = time.perf_counter()
    last_checkpoint = checkpointer.latest()
    stop = False

    def prepare_images(images: torch.Tensor) -> torch.Tensor:
        images = images.to(device, non_blocking=True)
        if config.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    for epoch in range(start_epoch, config.epochs):
        loader.sampler.set_epoch(epoch)
        order = [index for index, _ in loader.sampler]
        model.train()
        metric.reset()
        epoch_start = time.perf_counter()
        batches = loader
        if rank == 0:
            from tqdm import tqdm

            batches = tqdm(
                loader,
                desc=f"epoch {epoch + 1}/{config.epochs}",
                unit="batch",
                leave=False,
                disable=not sys.stderr.isatty(),
            )
        seen = 0
        for batch_index, (images, labels) in enumerate(batches):
            images = prepare_images(images)
            labels = labels.to(device, non_blocking=True)
            with autocast:
                out = train_model(images, labels)
            loss = out["loss"]
            optimizer.zero_grad(set_to_none=True)
            finite = bool(torch.isfinite(loss))
            if finite:
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimizer)
                else:
                    loss.backward()
                grad_norm = torch.nn.utils.clip_grad_norm_(
                    [p for p in model.parameters() if p.grad is not None], max_norm=math.inf
                )
                finite = bool(torch.isfinite(grad_norm))
            if not finite:
                nonfinite_in_a_row += 1
                ids = [train_set[i].image_id for i in order[batch_index * per_rank_batch :][:per_rank_batch]]
                _log(
                    f"non-finite loss or gradient at epoch {epoch + 1} step {step}: skipped the step; "
                    f"images {', '.join(ids)}",
                    rank,
                )
                optimizer.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.update()
                if nonfinite_in_a_row >= config.max_nonfinite:
                    raise NonFiniteLossError(
                        f"{nonfinite_in_a_row} non-finite steps in a row (last images: {', '.join(ids)}); "
                        "lower the learning rate, add warm-up (warmup_epochs), or check the data with "
                        "`multibox data check`"
                    )
                continue
            nonfinite_in_a_row = 0
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            scheduler.step()
            step += 1
            seen += images.shape[0]
            positive = out["loc_mask"] != 0  # smooth-L1 is zero elsewhere
            residual = (
                out["loc_preds"].detach().reshape(positive.shape)[positive] - out["loc_target"][positive]
            )
            metric.update(out["cls_preds"].detach(), out["cls_target"], smooth_l1(residual.float()))
            if rank == 0 and hasattr(batches, "set_postfix"):
                values = metric.compute()
                rate = seen * dist.world_size / max(1e-9, time.perf_counter() - epoch_start)
                batches.set_postfix(
                    CE=f"{values['CrossEntropy']:.3f}", L1=f"{values['SmoothL1']:.3f}", img_s=f"{rate:.1f}"
                )
            if config.max_iterations is not None and step >= config.max_iterations:
                stop = True
                break

        values = dist.reduce_metric(metric)
        elapsed = time.perf_counter() - epoch_start
        row = {
            "epoch": epoch + 1,
            "step": step,
            "lr": optimizer.param_groups[0]["lr"],
            **values,
            "samples_per_second": seen * dist.world_size / max(1e-9, elapsed),
            "seconds": elapsed,
        }
        time_up = config.time_limit is not None and time.perf_counter() - started >= config.time_limit
        last_epoch = epoch + 1 == config.epochs or stop or time_up
        evaluated = None
        will_evaluate = val_loader is not None and ((epoch + 1) % config.val_interval == 0 or last_epoch)
        if config.precise_bn_batches > 0 and (will_evaluate or last_epoch):
            # running BatchNorm averages lag behind fast-moving weights: recompute them (precise_bn.py)
            recompute_batchnorm_statistics(model, loader, config.precise_bn_batches, prepare_images)
        if will_evaluate:
            evaluated = evaluate(
                model,
                val_loader,
                class_names,
                device,
                nms_threshold=config.nms_threshold,
                nms_topk=config.nms_topk,
                per_class=config.per_class_detection,
            )
            row.update(mAP_voc07=evaluated["mAP_voc07"], mAP_area=evaluated["mAP_area"])
        history.append(row)
        message = (
            f"epoch {epoch + 1}/{config.epochs}  CrossEntropy={values['CrossEntropy']:.4f}  "
            f"SmoothL1={values['SmoothL1']:.4f}  lr={row['lr']:.2e}  "
            f"{row['samples_per_second']:.1f} img/s  {elapsed:.0f}s"
        )
        if evaluated is not None:
            message += f"  mAP(VOC07)={evaluated['mAP_voc07']:.4f}  mAP(area)={evaluated['mAP_area']:.4f}"
        _log(message, rank)
        if rank == 0:
            state = {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
                "epoch": epoch + 1,
                "step": step,
                "rng": rng_state(),
                "config": config.to_dict(),
                "class_names": class_names,
                "history": history,
                "network": {
                    "name": config.network,
                    "data_shape": config.data_shape,
                    "options": config.network_options,
                    "num_classes": len(class_names),
                },
            }
            last_checkpoint = checkpointer.save(
                state, epoch + 1, metric=None if evaluated is None else evaluated["mAP_voc07"]
            )
            _write_csv(out_dir / "log.csv", history)
            _plot_history(out_dir, history)
            if writer is not None:
                for key, value in row.items():
                    if key != "epoch" and isinstance(value, int | float):
                        writer.add_scalar(key, value, epoch + 1)
                writer.flush()
        dist.barrier()
        if stop or time_up:
            break
    if writer is not None:
        writer.close()
    dist.close()
    final = history[-1] if history else {}
    return TrainResult(out_dir, last_checkpoint, model, class_names, history, final)
