"""Training configuration: one dataclass of keyword defaults, filled from YAML files and ``key=value`` overrides."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the original's where it had one (spec 1.2, 1.3)."""

    # data
    train_data: str = "shapes:512"  # VOC folder, COCO JSON, YOLO folder, .lst, or shapes[:N[:SEED]]
    train_split: str | None = "train"
    val_data: str | None = None  # default: train_data with val_split
    val_split: str | None = "val"
    class_names: str | None = None  # file with one class per line (default: from the data)
    # network
    network: str = "vgg16_reduced"
    data_shape: int = 300
    weights_backbone: str | None = None
    network_options: dict = field(default_factory=dict)  # any build_ssd override (sizes, depthwise, ...)
    augmentation: dict = field(
        default_factory=dict
    )  # TrainAugmentation keywords (expand_prob, crop_prob, ...)
    # optimisation
    optimizer: str = "sgd"  # sgd | sgd_mxnet (lr inside the momentum buffer, as the original) | adamw
    lr: float = 0.002
    scale_lr: bool = False  # lr * global_batch / 32
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"  # step | cosine
    lr_steps: list[int] = field(default_factory=lambda: [80, 160])  # epochs
    lr_factor: float = 0.1
    warmup_epochs: float = 0.0
    epochs: int = 240
    batch_size: int = 32
    freeze: str | None = "default"  # regex of parameter names to freeze; "default": the original's choice
    negative_mining_ratio: float = 3.0
    minimum_negative_samples: int = 0
    loss_normalization: str = "valid"
    # speed
    amp: bool = False
    channels_last: bool = False
    compile: bool = False
    num_workers: int | None = None
    device: str | None = None  # default: cuda when available
    # evaluation
    val_interval: int = 1  # epochs
    nms_threshold: float = 0.45
    nms_topk: int = 400
    per_class_detection: bool = True
    precise_bn_batches: int = (
        16  # training batches that recompute BatchNorm statistics before evaluating (0: off)
    )
    # run
    out_dir: str = "runs/train"
    resume: str | None = "auto"  # auto | PATH | none
    keep_last: int = 3
    seed: int = 0
    max_nonfinite: int = 5  # non-finite steps in a row before training stops
    max_iterations: int | None = None  # stop early (tests, smoke runs)
    time_limit: float | None = None  # seconds; stop at the end of the epoch that passes it
    tensorboard: bool = True

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _coerce(name: str, text: str, current: Any) -> Any:
    """Convert a command-line string to the type of the field's current value (YAML syntax for lists, dicts)."""
    import yaml

    value = yaml.safe_load(text)
    if value is None or current is None:
        return value
    if isinstance(current, bool):
        if not isinstance(value, bool):
            raise ValueError(f"{name} expects true or false, got {text!r}")
        return value
    if isinstance(current, float) and isinstance(value, int):
        return float(value)
    if isinstance(current, str) and not isinstance(value, str):
        return str(text)
    if type(value) is not type(current) and not (isinstance(current, int) and isinstance(value, int)):
        raise ValueError(f"{name} expects {type(current).__name__}, got {text!r}")
    return value


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **defaults: Any
) -> TrainConfig:
    """``TrainConfig`` from keyword defaults, then a YAML file, then ``key=value`` overrides (in that order).

    Unknown keys are errors that name the key and list the valid ones.
    """
    import yaml

    config = TrainConfig(**defaults)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    if path is not None:
        content = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(content, dict):
            raise ValueError(f"{path}: expected a mapping of settings")
        unknown = sorted(set(content) - names)
        if unknown:
            raise ValueError(f"{path}: unknown settings {unknown}; valid: {', '.join(sorted(names))}")
        config = config.replace(**content)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value")
        key, text = item.split("=", 1)
        key = key.strip().replace("-", "_")
        if key not in names:
            raise ValueError(f"unknown setting {key!r}; valid: {', '.join(sorted(names))}")
        config = config.replace(**{key: _coerce(key, text, getattr(config, key))})
    return config
