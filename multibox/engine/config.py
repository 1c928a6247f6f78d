"""Training configuration: one dataclass of keyword defaults, filled from YAML files and ``key=value`` overrides."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from multibox.errors import ConfigError
from multibox.model.detection_settings import DetectionSettings


@dataclass
class TrainConfig:
    """Every setting of a training run; defaults are the original's where it had one (spec 1.2, 1.3)."""

    # data
    # VOC folder, COCO JSON or COCO root, YOLO folder, .lst, shapes[:N[:SEED]]; or a list of them, joined into
    # one set (classes merged by name, multibox/data/concat.py), train_split read from each
    train_data: str | list[str] = "shapes:512"
    train_split: str | None = "train"
    val_data: str | list[str] | None = None  # default: train_data with val_split; a list is joined too
    val_split: str | None = "val"
    class_names: str | None = None  # file with one class per line (default: from the data)
    # the recipe: a setting left at None (weights_backbone at "auto") takes the recipe's value, see recipes.py
    recipe: str = (
        "auto"  # auto (by hardware and finetune) | lite | ssd300 | finetune | mxnet (the original's)
    )
    # network
    network: str | None = None
    data_shape: int | None = None
    weights_backbone: str | None = (
        "auto"  # auto (the recipe's, if on this machine) | imagenet | NAME | PATH | null
    )
    finetune: str | None = None  # a multibox checkpoint whose whole detector training starts from
    network_options: dict = field(default_factory=dict)  # any build_ssd override (sizes, depthwise, ...)
    anchors: str = (
        "default"  # default (the network's) | auto (fitted to the training boxes, see data anchors)
    )
    augment: str | None = None  # light (crops + flips) | original (the original's: + zoom-out, colour jitter)
    multi_scale: list[int] = field(
        default_factory=list
    )  # training sizes drawn per batch, e.g. [256, 320, 384]
    augmentation: dict = field(
        default_factory=dict
    )  # TrainAugmentation keywords over the augment strength's (expand_prob, ..., samplers: [...], colour: {...})
    # optimisation
    optimizer: str | None = None  # sgd | sgd_mxnet (lr inside the momentum buffer, as the original) | adamw
    lr: float | None = None
    scale_lr: bool = False  # lr * global_batch / 32
    momentum: float = 0.9
    weight_decay: float | None = None
    schedule: str | None = None  # step | cosine
    lr_steps: list[int] = field(
        default_factory=lambda: [80, 160]
    )  # epochs (of the schedule, see time_budget)
    lr_factor: float = 0.1
    warmup_epochs: float | None = None
    epochs: int | None = None  # with time_budget: the schedule's length that the budget is stretched over
    time_budget: float | None = None  # seconds ("15m", "1h" ...): the schedule follows the fraction used
    batch_size: int | None = None
    freeze: str | None = "default"  # "default" (the network's, with pretrained weights only), "backbone",
    # "all_but_heads", or a regex
    ema: bool | None = None  # an exponential moving average of the weights, evaluated and saved beside them
    ema_decay: float = 0.998
    negative_mining_ratio: float = 3.0
    minimum_negative_samples: int = 0
    loss_normalization: str = "valid"
    # speed
    amp: bool = False
    channels_last: bool = True  # NHWC memory: faster convolutions on CPUs (depthwise ones most) and GPUs
    compile: bool = False
    num_workers: int | None = None  # default: what the thread budget gives (threads.py)
    threads: int | None = None  # intra-op threads; default: the cores left by the loader and other processes
    device: str | None = None  # default: cuda when available
    # evaluation
    val_interval: int | None = None  # epochs; default: every epoch up to 10, else about 10 times a run
    nms_threshold: float = DetectionSettings.nms_threshold  # decoding defaults: DetectionSettings' own
    nms_topk: int = DetectionSettings.nms_topk
    per_class_detection: bool = DetectionSettings.per_class
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
    time_limit: float | None = None  # seconds ("10m" ...); stop at the end of the epoch that passes it
    tensorboard: bool = True

    def replace(self, **changes: Any) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def checked(self) -> TrainConfig:
        """This config with every value converted to its field's type, or a :class:`ConfigError` naming the
        first setting of the wrong type, outside its range or not among its choices."""
        from multibox.engine.config_checks import check_config

        return check_config(self)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None = None, overrides: list[str] | None = None, **defaults: Any
) -> TrainConfig:
    """``TrainConfig`` from keyword defaults, then a YAML file, then ``key=value`` overrides (in that order),
    checked (:meth:`TrainConfig.checked`): YAML values and command-line values obey the same rules.

    A mapping setting also takes dotted keys, ``augmentation.colour.max_hue=9``: the value (read as YAML) is
    set at that place of the mapping, the rest of it kept. Unknown keys are errors that name the key and list
    the valid ones.
    """
    values = dict(defaults)
    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if path is not None:
        values.update(_read_yaml(Path(path), set(fields)))
    for item in overrides or []:
        key, value = _parse_override(item)
        name, _, inner = key.partition(".")
        if name not in fields:
            raise ConfigError(f"unknown setting {name!r}; valid: {', '.join(sorted(fields))}")
        if not inner:
            values[name] = value
            continue
        if fields[name].type != "dict":
            raise ConfigError(f"{key}: {name} is not a mapping, so it takes no dotted key; give {name}=VALUE")
        values[name] = _set_nested(values.get(name), inner.split("."), value, key)
    return TrainConfig(**values).checked()


def _set_nested(mapping: Any, path: list[str], text: str, key: str) -> dict:
    """A copy of ``mapping`` (None: empty) with the YAML value of ``text`` at ``path``; an entry on the way
    that is not a mapping (None, true/false) becomes one, a list is refused."""
    from multibox.engine.config_checks import read_yaml_value

    mapping = read_yaml_value(key, mapping) if isinstance(mapping, str) else mapping  # an earlier NAME=...
    mapping = copy.deepcopy(mapping) if isinstance(mapping, dict) else {}
    node = mapping
    for depth, part in enumerate(path[:-1]):
        child = node.get(part)
        if isinstance(child, list | tuple):
            where = ".".join([key.split(".")[0], *path[: depth + 1]])
            raise ConfigError(f"{key}: {where} is a list; give the whole list, {where}=[...]")
        node[part] = child if isinstance(child, dict) else {}
        node = node[part]
    node[path[-1]] = read_yaml_value(key, text)
    return mapping


def _read_yaml(path: Path, names: set[str]) -> dict:
    import yaml

    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(f"{path} is not valid YAML{line}: fix the file's syntax") from error
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of settings (key: value lines)")
    unknown = sorted(str(k) for k in set(content) - names)
    if unknown:
        raise ConfigError(f"{path}: unknown settings {unknown}; valid: {', '.join(sorted(names))}")
    return content


def _parse_override(item: str) -> tuple[str, Any]:
    """``key=value``; the value stays text until the check reads it for its setting's type."""
    from multibox.engine.config_checks import CommandLineText

    if "=" not in item:
        raise ConfigError(f"override {item!r} must look like key=value")
    key, text = item.split("=", 1)
    return key.strip().replace("-", "_"), CommandLineText(text)
