"""The rules every training setting obeys: its type (as declared on TrainConfig), its range, its choices.

YAML values and command-line text go through the same conversion, so ``lr: 5e-3`` in a file and ``lr=5e-3`` on
the command line both give 0.005, and a wrong value is refused in one line that names the setting.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any

from multibox.errors import ConfigError


class CommandLineText(str):
    """A ``key=value`` value as typed; read as YAML unless its setting takes text."""


CHOICES = {
    "recipe": ("auto", "lite", "ssd300", "finetune", "mxnet"),  # multibox.engine.recipes.RECIPES
    "augment": ("light", "original", None),  # multibox.engine.recipes.AUGMENT_STRENGTHS
    "anchors": ("default", "auto"),
    "optimizer": ("sgd", "sgd_mxnet", "adamw", None),
    "schedule": ("step", "cosine", None),
    "loss_normalization": ("valid", "num_pos"),
}

# setting -> (rule, what the rule says); None passes where the type allows None.
RANGES = {
    "epochs": (lambda v: v >= 1, ">= 1"),
    "batch_size": (lambda v: v >= 1, ">= 1"),
    "data_shape": (lambda v: v >= 16, ">= 16 (pixels)"),
    "lr": (lambda v: v > 0, "> 0"),
    "momentum": (lambda v: 0 <= v < 1, "in [0, 1)"),
    "weight_decay": (lambda v: v >= 0, ">= 0"),
    "lr_steps": (lambda v: all(s >= 0 for s in v), "a list of epochs >= 0"),
    "lr_factor": (lambda v: v > 0, "> 0"),
    "warmup_epochs": (lambda v: v >= 0, ">= 0"),
    "minimum_negative_samples": (lambda v: v >= 0, ">= 0"),
    "num_workers": (lambda v: v >= 0, ">= 0"),
    "val_interval": (lambda v: v >= 1, ">= 1"),
    "nms_threshold": (lambda v: 0 < v <= 1, "in (0, 1]"),
    "nms_topk": (lambda v: v >= 1 or v == -1, ">= 1, or -1 for all"),
    "precise_bn_batches": (lambda v: v >= 0, ">= 0"),
    "keep_last": (lambda v: v >= 1, ">= 1"),
    "max_nonfinite": (lambda v: v >= 1, ">= 1"),
    "max_iterations": (lambda v: v >= 1, ">= 1"),
    "time_limit": (lambda v: v > 0, "> 0 (seconds)"),
    "time_budget": (lambda v: v > 0, "> 0 (seconds)"),
    "ema_decay": (lambda v: 0 < v < 1, "in (0, 1)"),
    "threads": (lambda v: v >= 1, ">= 1"),
    "multi_scale": (lambda v: all(s >= 16 for s in v), "a list of sizes >= 16 (pixels)"),
}

DATA_SOURCES = ("train_data", "val_data")
"""Settings that take one dataset or a list of them (joined by multibox.data.concat)."""

DURATIONS = ("time_limit", "time_budget")
"""Settings in seconds that also take text such as ``90s``, ``15m``, ``1h30m``."""

_DURATION = re.compile(r"^\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*$")


def parse_duration(name: str, value: Any) -> Any:
    """Seconds of ``value``: a number, or text like ``900``, ``90s``, ``15m``, ``1h30m``; other values as they are."""
    if not isinstance(value, str) or not value.strip():
        return value
    match = _DURATION.match(value.lower())
    if match is None or not any(match.groups()):
        raise ConfigError(f"{name}={value!r} is not a duration: give seconds (900) or e.g. 90s, 15m, 1h30m")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def check_config(config: Any) -> Any:
    """``config`` (a TrainConfig) with each value converted to its declared type, ranges and choices checked."""
    hints = typing.get_type_hints(type(config))
    values = {}
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        if item.name in DURATIONS:
            value = parse_duration(item.name, value)
        if item.name in DATA_SOURCES:
            value = data_sources(item.name, value, type(None) in typing.get_args(hints[item.name]))
        else:
            value = convert(item.name, value, hints[item.name])
        _check_range(item.name, value)
        values[item.name] = value
    _check_names(values)
    _check_augmentation(values["augmentation"])
    if values.get("finetune") and values.get("weights_backbone") not in (None, "auto"):
        raise ConfigError(
            "finetune and weights_backbone both given: finetune starts from its whole detector, backbone "
            "included; drop weights_backbone"
        )
    return dataclasses.replace(config, **values)


def data_sources(name: str, value: Any, optional: bool) -> str | list[str] | None:
    """A data setting: one source (text, kept as typed) or a non-empty list of them; on the command line a
    list is YAML in brackets, ``train_data=[VOC2007, VOC2012]``."""
    if isinstance(value, CommandLineText):
        text = value.strip()
        if text.lower() in ("null", "~", ""):
            value = None
        elif not text.startswith("["):
            return str(value)
        else:
            value = read_yaml_value(name, text)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} needs a value: a dataset, or a list of datasets")
    items = value if isinstance(value, list | tuple) else [value]
    bad = [
        v for v in items if isinstance(v, bool) or not isinstance(v, str | int | float) or not str(v).strip()
    ]
    if bad or not items:
        shown = repr(bad[0]) if bad else "an empty list"
        raise ConfigError(f"{name} expects a dataset or a list of datasets (text), got {shown}")
    return [str(v) for v in items] if isinstance(value, list | tuple) else str(value)


def _check_augmentation(settings: dict) -> None:
    """The ``augmentation`` mapping as TrainAugmentation takes it: ConfigError naming a bad key (its checks
    and conversion are the data room's, :func:`multibox.data.augment_settings.train_augmentation_keywords`)."""
    from multibox.data.augment_settings import train_augmentation_keywords

    train_augmentation_keywords(settings)


def convert(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the type ``hint`` declares (``int``, ``float``, ``str``, ``bool``, ``list[int]``, ``dict``,
    or one of them ``| None``); :class:`ConfigError` when it cannot be."""
    allowed = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    optional = type(None) in allowed
    target = next(t for t in allowed if t is not type(None))
    base = typing.get_origin(target) or target
    if isinstance(value, CommandLineText):
        if base is str and not (optional and value.strip().lower() in ("null", "~")):
            return str(value)
        value = read_yaml_value(name, value)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{name} needs a value ({_describe(target)}), got nothing")
    converted = _to_base(value, base, typing.get_args(target))
    if converted is None:
        shown = f"{value!r}" if not isinstance(value, str) else repr(str(value))
        raise ConfigError(f"{name} expects {_describe(target)}{' or null' if optional else ''}, got {shown}")
    return converted


def read_yaml_value(name: str, text: str) -> Any:
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(
            f"{name}={text!r} is not a valid value (YAML syntax for lists and mappings)"
        ) from error


def _to_base(value: Any, base: type, item_types: tuple) -> Any:
    """``value`` converted to ``base``, or None when it does not fit."""
    if base is bool:
        return value if isinstance(value, bool) else None
    if base is int:
        return _as_int(value)
    if base is float:
        return _as_float(value)
    if base is str:
        return str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else None
    if base is list:
        items = value if isinstance(value, list | tuple) else [value]
        if item_types and item_types[0] is int:
            converted = [_as_int(v) for v in items]
            return None if any(v is None for v in converted) else converted
        return list(items)
    if base is dict:
        return dict(value) if isinstance(value, dict) else None
    return value


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    number = _as_float(value)
    return int(number) if number is not None and number.is_integer() else None


def _as_float(value: Any) -> float | None:
    """Numbers and numeric text (YAML reads ``5e-3`` as text); finite values only."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _describe(hint: Any) -> str:
    base = typing.get_origin(hint) or hint
    names = {bool: "true or false", int: "an integer", float: "a number", str: "text", dict: "a mapping"}
    if base is list:
        return "a list of integers" if typing.get_args(hint) == (int,) else "a list"
    return names.get(base, getattr(base, "__name__", str(base)))


def _check_range(name: str, value: Any) -> None:
    if name in CHOICES and value not in CHOICES[name]:
        shown = ", ".join(str(choice) for choice in CHOICES[name] if choice is not None)
        raise ConfigError(f"{name} must be one of {shown}, got {value!r}")
    if name in RANGES and value is not None:
        rule, text = RANGES[name]
        if not rule(value):
            raise ConfigError(f"{name} must be {text}, got {value!r}")


def _check_names(values: dict) -> None:
    """Settings whose valid values live elsewhere: networks, the freeze pattern, the device."""
    from multibox.engine.optim import FREEZE_CHOICES
    from multibox.model import network_names

    known = sorted(network_names())
    if values["network"] is not None and values["network"] not in known:
        raise ConfigError(f"network {values['network']!r} is unknown; choose from {', '.join(known)}")
    freeze = values["freeze"]
    if freeze not in (None, "default", *FREEZE_CHOICES):
        try:
            re.compile(freeze)
        except re.error as error:
            raise ConfigError(f"freeze {freeze!r} is not a valid regular expression: {error}") from error
    if values["device"] is not None:
        import torch

        try:
            torch.device(values["device"])
        except (RuntimeError, ValueError) as error:
            raise ConfigError(
                f"device {values['device']!r} is not a device (cpu, cuda, cuda:1 ...)"
            ) from error
