"""The ``augmentation`` settings of a training config (plain YAML / command-line values) as
:class:`~multibox.data.augment.TrainAugmentation` keywords: ``samplers`` and ``colour`` become the real
:class:`CropSampler` and :class:`ColourJitter` objects, each bad key refused in one line that names it.

``samplers`` is a list of mappings of :class:`CropSampler` fields (keys left out take its defaults), ``[]``
for no crops; ``colour`` is a mapping of :class:`ColourJitter` fields (keys left out take the original's
values), ``true`` for the original's jitter, ``false`` / ``null`` for none.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import typing
from collections.abc import Callable, Mapping
from typing import Any

from multibox.data.augment import TrainAugmentation
from multibox.data.augment_colour import ColourJitter
from multibox.data.augment_geometry import CropSampler
from multibox.errors import ConfigError

Rule = tuple[Callable[[float], bool], str]
_FRACTION: Rule = (lambda v: 0 <= v <= 1, "in [0, 1]")
_SCALE: Rule = (lambda v: 0 < v <= 1, "in (0, 1]")
_POSITIVE: Rule = (lambda v: v > 0, "> 0")

SAMPLER_RULES: dict[str, Rule] = {
    "min_iou": _FRACTION,
    "max_iou": _FRACTION,
    "min_scale": _SCALE,
    "max_scale": _SCALE,
    "min_aspect": _POSITIVE,
    "max_aspect": _POSITIVE,
    "min_sample_coverage": _FRACTION,
    "max_sample_coverage": _FRACTION,
    "min_object_coverage": _FRACTION,
    "max_object_coverage": _FRACTION,
    "max_trials": (lambda v: v >= 1, ">= 1"),
}
COLOUR_RULES: dict[str, Rule] = {
    "max_hue": (lambda v: 0 <= v <= 180, "in [0, 180] (8-bit hue steps)"),
    "max_saturation": (lambda v: 0 <= v <= 255, "in [0, 255]"),
    "max_lightness": (lambda v: 0 <= v <= 255, "in [0, 255]"),
    "max_contrast": _FRACTION,
    "hue_prob": _FRACTION,
    "saturation_prob": _FRACTION,
    "lightness_prob": _FRACTION,
    "contrast_prob": _FRACTION,
}
SCALAR_RULES: dict[str, Rule] = {
    "mirror_prob": _FRACTION,
    "expand_prob": _FRACTION,
    "crop_prob": _FRACTION,
    "max_expand": (lambda v: v >= 1, ">= 1"),
    "min_expand": (lambda v: v >= 1, ">= 1"),
}


@functools.cache
def augmentation_keys() -> tuple[str, ...]:
    """The keys ``augmentation`` takes: TrainAugmentation's keywords but ``data_shape`` (the config's own)."""
    names = inspect.signature(TrainAugmentation.__init__).parameters
    return tuple(name for name in names if name not in ("self", "data_shape"))


def train_augmentation_keywords(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` as TrainAugmentation keywords; :class:`ConfigError` naming the first unknown key, value of
    the wrong type or value out of range (``augmentation.samplers[1].min_iou must be in [0, 1], got 1.5``)."""
    keywords = {}
    for key, value in settings.items():
        where = f"augmentation.{key}"
        if key not in augmentation_keys():
            raise ConfigError(f"{where}: unknown key; valid: {', '.join(augmentation_keys())}")
        if key == "samplers":
            value = crop_samplers(value, where)
        elif key == "colour":
            value = colour_jitter(value, where)
        elif key in SCALAR_RULES and value is not None:
            value = _checked(where, value, float, SCALAR_RULES[key])
        keywords[key] = value
    return keywords


def crop_samplers(value: Any, where: str = "samplers") -> tuple[CropSampler, ...]:
    """A list of :class:`CropSampler` field mappings (or CropSamplers) -> the samplers."""
    if not isinstance(value, list | tuple):
        raise ConfigError(
            f"{where} expects a list of sampler mappings ({{min_iou: 0.5, ...}}), got {value!r}"
        )
    samplers = []
    for number, item in enumerate(value):
        spot = f"{where}[{number}]"
        sampler = item if isinstance(item, CropSampler) else CropSampler(**_fields(CropSampler, item, spot))
        _check_pairs(sampler, spot, ("iou", "scale", "aspect", "sample_coverage", "object_coverage"))
        samplers.append(sampler)
    return tuple(samplers)


def colour_jitter(value: Any, where: str = "colour") -> ColourJitter | None:
    """A :class:`ColourJitter` field mapping (or true: the original's; false / null: none) -> the jitter."""
    if value is None or value is False:
        return None
    if value is True:
        return ColourJitter()
    if isinstance(value, ColourJitter):
        return value
    return ColourJitter(**_fields(ColourJitter, value, where))


def _fields(kind: type, mapping: Any, where: str) -> dict[str, Any]:
    """``mapping``'s values converted to ``kind``'s field types and checked by its rules."""
    rules = SAMPLER_RULES if kind is CropSampler else COLOUR_RULES
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where} expects a mapping of {', '.join(rules)}, got {mapping!r}")
    types = typing.get_type_hints(kind)
    valid = [f.name for f in dataclasses.fields(kind)]
    out = {}
    for key, value in mapping.items():
        if key not in valid:
            raise ConfigError(f"{where}: unknown key {key!r}; valid: {', '.join(valid)}")
        out[key] = _checked(f"{where}.{key}", value, types[key], rules[key])
    return out


def _checked(where: str, value: Any, kind: type, rule: Rule) -> int | float:
    """``value`` as ``kind`` (int or float; numeric text too), inside ``rule``."""
    number = _number(value)
    if number is None or (kind is int and not number.is_integer()):
        expected = "an integer" if kind is int else "a number"
        raise ConfigError(f"{where} expects {expected}, got {value!r}")
    test, text = rule
    if not test(number):
        raise ConfigError(f"{where} must be {text}, got {value!r}")
    return int(number) if kind is int else number


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        number = float(value) if isinstance(value, int | float | str) else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _check_pairs(sampler: CropSampler, where: str, pairs: tuple[str, ...]) -> None:
    for pair in pairs:
        low, high = getattr(sampler, f"min_{pair}"), getattr(sampler, f"max_{pair}")
        if low > high:
            raise ConfigError(f"{where}: min_{pair} {low} is above max_{pair} {high}; give min <= max")
