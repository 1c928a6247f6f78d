"""The parts of a training run, built from a TrainConfig: datasets, model, loss module, optimiser, loaders."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from multibox.checkpoint import detector_weights, network_description, read_checkpoint
from multibox.data import (
    TrainAugmentation,
    check_dataset,
    clean_for_training,
    make_loader,
    require_images,
)
from multibox.data.concat import as_source_list, concat_datasets, load_sources
from multibox.engine.anchor_report import anchor_report
from multibox.engine.checkpointer import Checkpointer
from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
from multibox.engine.optim import build_optimizer, freeze_parameters, freeze_pattern, lr_multiplier
from multibox.engine.recipes import augmentation_keywords
from multibox.engine.threads import cpu_cores, loader_workers
from multibox.engine.time_budget import TimeBudget
from multibox.engine.train_logs import log
from multibox.errors import ConfigError, MissingSplitError
from multibox.model import build_ssd, network_spec
from multibox.model.anchor_fit import fit_score
from multibox.model.transfer import transfer_detector_weights


class SSDLoss(torch.nn.Module):
    """``model.loss`` as a module's forward, so DistributedDataParallel sees (and syncs) the backward."""

    def __init__(self, model: torch.nn.Module, **loss_options) -> None:
        super().__init__()
        self.model = model
        self.loss_options = loss_options

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.model.loss(images, labels, **self.loss_options)


@dataclass
class TrainingParts:
    """What :func:`build_parts` makes: the ``config`` it built them from (a fine-tune's network options and
    fitted anchors filled in), the bare ``model`` and the ``train_model`` that steps it (loss module,
    DDP-wrapped and compiled as configured), optimiser, schedule, AMP, loaders and the checkpoint folder."""

    config: TrainConfig
    model: torch.nn.Module
    train_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    autocast: object
    scaler: torch.amp.GradScaler | None
    loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None  # rank 0 only
    has_validation: bool  # on every rank
    train_set: object
    network: dict
    checkpointer: Checkpointer
    time_budget: TimeBudget | None = None  # the schedule's clock when the run has a time_budget


def build_parts(config: TrainConfig, dist: DistributedContext, source: dict | None = None) -> TrainingParts:
    """Seed, data, model (on the device, frozen as configured), optimiser, loaders, for this rank; ``source``:
    the ``finetune`` checkpoint when the caller has read it already."""
    torch.manual_seed(config.seed + dist.rank)
    if dist.device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # the input size is fixed: let cuDNN pick its fastest kernels
    out_dir = Path(config.out_dir)
    if dist.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    config, source = finetune_source(config, source)  # a fine-tune keeps its detector's network_options
    train_set, val_set = load_datasets(config, dist.rank)
    config = fitted_anchors(config, train_set, dist.rank)
    model = build_model(config, list(train_set.class_names), dist.rank, source).to(dist.device)
    if config.channels_last:
        model.to(memory_format=torch.channels_last)
    batch_size = per_rank_batch_size(config, dist.world_size)
    loader = training_loader(config, train_set, batch_size, dist.world_size, dist.rank, dist.device)
    budget = time_budget(config, val_set, batch_size)
    optimizer, scheduler = optimizer_and_schedule(config, model, max(1, len(loader)), budget)
    autocast, scaler = autocast_and_scaler(config, dist.device)
    has_validation = dist.all_ranks(val_set is not None)
    train_model = dist.wrap(loss_module(config, model))  # DDP starts every rank from rank 0's weights
    return TrainingParts(
        config=config,
        model=model,
        train_model=torch.compile(train_model) if config.compile else train_model,
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
        network=network_description(
            config.network, len(train_set.class_names), config.data_shape, config.network_options
        ),
        checkpointer=Checkpointer(out_dir / "checkpoints", keep_last=config.keep_last),
        time_budget=budget,
    )


def time_budget(config: TrainConfig, val_set, batch_size: int) -> TimeBudget | None:
    """The run's :class:`TimeBudget` (None without ``time_budget``), told what the run's end processes."""
    if not config.time_budget:
        return None
    models = 2 if config.ema else 1
    end_images = models * (
        (len(val_set) if val_set is not None else 0) + config.precise_bn_batches * batch_size
    )
    return TimeBudget(config.time_budget, end_images)


def fitted_anchors(config: TrainConfig, train_set, rank: int) -> TrainConfig:
    """With ``anchors=auto``: ``config`` with anchor sizes and ratios fitted to the training boxes (kept only
    when they match more boxes at IoU 0.5 than the network's own; see ``multibox data anchors``)."""
    if config.anchors != "auto":
        return config
    fit = anchor_report(train_set, config.network, config.data_shape, fit=True).fit
    before, after = fit_score(fit.before)[0], fit_score(fit.after)[0]
    log(
        f"anchors=auto: the network's anchors match {100 * before:.1f}% of a class's training boxes at IoU "
        f"0.5 on average over the classes, fitted ones ({fit.method}) {100 * after:.1f}%"
        + ("" if fit.improved else ": keeping the network's"),
        rank,
    )
    return config.replace(network_options={**config.network_options, **fit.options})


def load_datasets(config: TrainConfig, rank: int):
    """The cleaned training set (an error when nothing usable is left) and the validation set (or None); a
    list of sources is read split by split and joined (:func:`multibox.data.concat.load_sources`)."""
    try:
        train_set = load_sources(config.train_data, config.train_split, class_names=config.class_names)
    except MissingSplitError as error:
        raise ConfigError(
            f"train_data: {error}; give train_split=NAME of a split it has, or train_split=null for every image"
        ) from None
    report = check_dataset(train_set, images=True, decode=False)
    train_set, summary = clean_for_training(train_set, report)
    log(f"train data {summary}", rank)
    shown = ", ".join(as_source_list(config.train_data))
    require_images(train_set, f"train_data {shown} (split {config.train_split})", report)
    val_set = load_validation(config, train_set.class_names, rank)
    if val_set is not None:
        val_set, summary = clean_for_training(val_set, check_dataset(val_set, images=True, decode=False))
        log(f"val data {summary}", rank)
        if len(val_set) == 0:
            log("the validation set has no usable images; training without evaluation", rank)
            val_set = None
    return train_set, val_set


def load_validation(config: TrainConfig, class_names: list[str], rank: int):
    """The validation set before cleaning, or None. ``val_data`` given: every source must hold ``val_split``
    (a missing one is an error: the user asked for it). Otherwise each ``train_data`` source that holds
    ``val_split`` is used, and each that does not is named in the log; none: training without evaluation."""
    if config.val_data:
        try:
            return load_sources(config.val_data, config.val_split, class_names=class_names)
        except FileNotFoundError as error:
            raise ConfigError(
                f"val_data: {error}; give val_split=NAME of a split it has, or leave val_data out"
            ) from None
    if config.val_split is None:
        return None
    found = []
    for source in as_source_list(config.train_data):
        try:
            found.append(load_sources(source, config.val_split, class_names=class_names))
        except FileNotFoundError as error:
            log(f"no validation data in {source} ({error})", rank)
    if not found:
        log("no source has validation data; training without evaluation", rank)
        return None
    return concat_datasets(found)


def build_model(
    config: TrainConfig, class_names: list[str], rank: int, source: dict | None = None
) -> torch.nn.Module:
    """The SSD of ``config.network`` for ``class_names``, started from ``config.finetune`` (its checkpoint
    ``source``, read here when not given) when set, with the configured parameters frozen."""
    if config.finetune and source is None:
        config, source = finetune_source(config)
    try:
        model = build_ssd(
            config.network,
            len(class_names),
            config.data_shape,
            weights_backbone=None if config.finetune else config.weights_backbone,
            **config.network_options,
        )
    except TypeError as error:  # an unknown keyword in network_options
        raise ConfigError(f"network_options {config.network_options}: {error}") from error
    except ConfigError as error:
        raise ConfigError(f"{config.network}: {error}") from error
    model.detection = model.detection.replace(
        nms_threshold=config.nms_threshold, nms_topk=config.nms_topk, per_class=config.per_class_detection
    )
    if source is not None:
        transfer = transfer_detector_weights(
            model, detector_weights(source), source["class_names"], class_names, source=str(config.finetune)
        )
        log(f"fine-tuning {config.finetune}: {transfer.summary()}", rank)
    pretrained = bool(config.weights_backbone or config.finetune)  # random layers are never frozen
    freeze = freeze_pattern(config.freeze, network_spec(config.network).freeze if pretrained else None)
    frozen = freeze_parameters(model, freeze)
    if frozen:
        log(f"frozen {len(frozen)} parameter tensors matching {freeze!r}", rank)
    return model


def finetune_source(config: TrainConfig, state: dict | None = None) -> tuple[TrainConfig, dict | None]:
    """``config`` with the ``finetune`` detector's network_options (its input normalisation and layout must
    be kept), and that checkpoint (``state``, read here when not given); ``config, None`` without
    ``finetune``."""
    if not config.finetune:
        return config, None
    state = read_checkpoint(config.finetune) if state is None else state
    network = state["network"]
    options = dict(network.get("options") or {})
    if network["name"] != config.network:
        raise ConfigError(
            f"finetune {config.finetune} is a {network['name']} detector; set network={network['name']} to "
            "fine-tune it"
        )
    if config.network_options and dict(config.network_options) != options:
        raise ConfigError(
            f"finetune {config.finetune} was built with network_options {options}, not "
            f"{dict(config.network_options)}: leave network_options out to take the detector's"
        )
    return config.replace(network_options=options), state


def loss_module(config: TrainConfig, model: torch.nn.Module) -> SSDLoss:
    return SSDLoss(
        model,
        negative_mining_ratio=config.negative_mining_ratio,
        minimum_negative_samples=config.minimum_negative_samples,
        normalization=config.loss_normalization,
    )


def per_rank_batch_size(config: TrainConfig, world_size: int) -> int:
    if config.batch_size % world_size:
        raise ConfigError(
            f"batch_size {config.batch_size} does not split over {world_size} processes: use a multiple of "
            f"{world_size}"
        )
    return config.batch_size // world_size


def optimizer_and_schedule(
    config: TrainConfig, model: torch.nn.Module, iterations_per_epoch: int, budget: TimeBudget | None = None
):
    """The optimiser (lr scaled by ``batch_size / 32`` with ``scale_lr``) and its per-iteration schedule; with a
    ``budget`` the schedule's epochs are fractions of it (epoch ``e`` of ``epochs`` at ``e / epochs`` used)."""
    lr = config.lr * (config.batch_size / 32 if config.scale_lr else 1.0)
    optimizer = build_optimizer(model, config.optimizer, lr, config.momentum, config.weight_decay)

    def iteration(it: int) -> float:
        return it if budget is None else budget.progress * config.epochs * iterations_per_epoch

    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda it: lr_multiplier(
            iteration(it),
            iterations_per_epoch,
            config.epochs,
            config.schedule,
            config.lr_steps,
            config.lr_factor,
            config.warmup_epochs,
        ),
    )
    return optimizer, scheduler


def training_loader(
    config: TrainConfig, train_set, batch_size: int, world_size: int, rank: int, device: torch.device
):
    keywords = augmentation_keywords(config)
    try:
        augmentation = TrainAugmentation(data_shape=(config.data_shape,) * 2, **keywords)
    except TypeError as error:
        raise ConfigError(f"augmentation {config.augmentation}: {error}") from error
    workers = config.num_workers
    if workers is None:
        workers = loader_workers(cpu_cores(), device.type)
    return make_loader(
        train_set,
        batch_size,
        train=True,
        data_shape=config.data_shape,
        transform=augmentation,
        num_workers=workers,
        seed=config.seed,
        drop_last=len(train_set) >= batch_size * world_size,
        num_replicas=world_size,
        rank=rank,
        return_indices=True,  # so the loop names (and counts) the images that could not be decoded
    )


def validation_loader(config: TrainConfig, val_set, batch_size: int):
    return make_loader(
        val_set,
        batch_size,
        train=False,
        data_shape=config.data_shape,
        num_workers=config.num_workers,
        return_indices=True,  # evaluation names and excludes the images that could not be decoded
    )


def autocast_and_scaler(config: TrainConfig, device: torch.device):
    """Mixed precision: bf16 where supported (no scaler needed), else fp16 with a GradScaler; off by default."""
    if not config.amp:
        return nullcontext(), None
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16), None
        return torch.autocast("cuda", dtype=torch.float16), torch.amp.GradScaler("cuda")
    return torch.autocast(device.type, dtype=torch.bfloat16), None
