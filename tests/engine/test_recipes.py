"""Recipes: which one ``auto`` picks, what a user's own setting keeps, the weights an ``auto`` setting finds on
this machine, durations, and the frozen-random-layers fix."""

from __future__ import annotations

import pytest
import torch

from multibox.engine.config import TrainConfig, load_config
from multibox.engine.recipes import RECIPES, augmentation_keywords, choose_recipe, resolve_recipe
from multibox.errors import ConfigError

CPU, GPU = torch.device("cpu"), torch.device("cuda")


def test_auto_is_lite_on_a_cpu_finetune_with_a_detector_and_ssd300_only_with_vgg_weights_on_disk(monkeypatch):
    import multibox.engine.recipes as recipes

    assert choose_recipe(TrainConfig(), CPU)[0].name == "lite"
    assert choose_recipe(TrainConfig(finetune="x.pt"), CPU)[0].name == "finetune"
    monkeypatch.setattr(recipes, "cached_torchvision_weights", lambda network, name: False)
    assert choose_recipe(TrainConfig(), GPU) == (
        RECIPES["lite"],
        "auto: no torchvision VGG-16 weights on disk",
    )
    monkeypatch.setattr(recipes, "cached_torchvision_weights", lambda network, name: True)
    assert choose_recipe(TrainConfig(), GPU)[0].name == "ssd300"
    assert choose_recipe(TrainConfig(recipe="mxnet"), CPU)[0].name == "mxnet"


def test_open_settings_take_the_recipe_and_the_users_own_are_kept():
    config, lines = resolve_recipe(TrainConfig(lr=0.01, batch_size=4).checked(), CPU)
    assert config.recipe == "lite" and config.network == "efficientnet_lite0" and config.data_shape == 320
    assert (config.optimizer, config.schedule, config.ema, config.augment) == (
        "adamw",
        "cosine",
        True,
        "light",
    )
    assert config.lr == 0.01 and config.batch_size == 4
    assert "  lr=0.01  (yours)" in lines and "  optimizer=adamw  (recipe)" in lines
    assert lines[0] == "recipe lite (auto: no GPU)"


def test_the_original_recipe_is_one_setting_away():
    config, _ = resolve_recipe(TrainConfig(recipe="mxnet", weights_backbone=None).checked(), CPU)
    assert (config.network, config.data_shape, config.optimizer, config.lr) == (
        "vgg16_reduced",
        300,
        "sgd",
        0.002,
    )
    assert (config.schedule, config.lr_steps, config.epochs, config.batch_size) == (
        "step",
        [80, 160],
        240,
        32,
    )
    assert config.ema is False and augmentation_keywords(config) == {}  # the original's augmentation


def test_auto_weights_are_only_what_is_on_this_machine(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    config, lines = resolve_recipe(TrainConfig(network="vgg16_reduced").checked(), CPU)
    assert config.weights_backbone is None  # nothing downloaded
    assert any("weights_backbone=None" in line and "downloads" in line for line in lines)
    assert any("network=vgg16_reduced_bn does" in line for line in lines)  # plain VGG stalls from scratch
    _, bn_lines = resolve_recipe(TrainConfig(network="vgg16_reduced_bn").checked(), CPU)
    assert not any("hardly learns" in line for line in bn_lines)
    import torchvision

    url = torchvision.models.VGG16_Weights.IMAGENET1K_V1.url
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / url.rsplit("/", 1)[1]).write_bytes(b"")
    config, _ = resolve_recipe(TrainConfig(network="vgg16_reduced").checked(), CPU)
    assert config.weights_backbone == "IMAGENET1K_V1"


def test_a_network_of_the_users_own_gets_its_own_input_size_not_the_recipes():
    config, lines = resolve_recipe(TrainConfig(network="vgg16_reduced").checked(), CPU)
    assert config.data_shape == 300 and "  data_shape=300  (vgg16_reduced's own)" in lines  # lite's is 320
    assert (
        resolve_recipe(TrainConfig(network="vgg16_reduced", data_shape=512).checked(), CPU)[0].data_shape
        == 512
    )
    assert resolve_recipe(TrainConfig(network="mobilenet_v2").checked(), CPU)[0].data_shape == 320  # untested


def test_a_finetune_takes_the_detectors_network_and_no_backbone_weights():
    config, lines = resolve_recipe(
        TrainConfig(finetune="x.pt").checked(), CPU, {"name": "tiny", "data_shape": 96}
    )
    assert (config.recipe, config.network, config.data_shape, config.weights_backbone) == (
        "finetune",
        "tiny",
        96,
        None,
    )
    assert "  network=tiny  (the fine-tuned detector's)" in lines


def test_augment_strengths_and_the_users_keywords_over_them():
    light = TrainConfig(augment="light", augmentation={"crop_prob": 0.3})
    assert augmentation_keywords(light) == {"expand_prob": 0.0, "colour": None, "crop_prob": 0.3}
    with pytest.raises(ConfigError, match="augment must be one of"):
        load_config(None, ["augment=strong"])


@pytest.mark.parametrize(
    ("text", "seconds"), [("900", 900.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0)]
)
def test_time_budgets_read_durations(text, seconds):
    assert load_config(None, [f"time_budget={text}"]).time_budget == seconds


def test_a_duration_that_is_not_one_is_refused_in_one_line():
    with pytest.raises(ConfigError, match="time_budget='soon' is not a duration"):
        load_config(None, ["time_budget=soon"])


def test_random_layers_are_never_frozen_by_default():
    from multibox.engine.train_setup import build_model

    scratch, _ = resolve_recipe(TrainConfig(recipe="mxnet", weights_backbone=None).checked(), CPU)
    model = build_model(scratch, ["a", "b"], rank=1)
    assert all(p.requires_grad for p in model.parameters())  # the original freezes nothing from scratch


def test_the_lite_recipe_freezes_imagenets_stem_and_first_three_blocks_only():
    """EfficientNet-Lite0's stem and blocks 0-2 (the 160x160 and 80x80 maps at 320) from ImageNet are frozen;
    from random weights nothing is; a training step leaves the frozen ones without gradients."""
    from multibox.engine.train_setup import build_model

    config, _ = resolve_recipe(TrainConfig(recipe="lite").checked(), CPU)
    model = build_model(config, ["a", "b"], rank=1)
    frozen = {
        n.split(".")[1] + ("." + n.split(".")[2] if "_blocks" in n else "")
        for n, p in model.named_parameters()
        if not p.requires_grad
    }
    assert frozen == {"_conv_stem", "_bn0", "_blocks.0", "_blocks.1", "_blocks.2"}
    assert all(p.requires_grad for n, p in model.named_parameters() if n.startswith("backbone._blocks.3."))
    images = torch.rand(2, 3, 320, 320)
    sum(o.float().mean() for o in model(images) if torch.is_tensor(o) and o.requires_grad).backward()
    assert all((p.grad is None) != p.requires_grad for p in model.parameters())
    scratch = build_model(config.replace(weights_backbone=None), ["a", "b"], rank=1)
    assert all(p.requires_grad for p in scratch.parameters())


def test_config_yaml_holds_the_anchors_the_run_fitted_and_trained_with(tmp_path):
    import yaml

    from multibox.checkpoint import read_checkpoint
    from multibox.engine.train import train

    config = TrainConfig(
        train_data="shapes:16",
        network="tiny",
        data_shape=64,
        anchors="auto",
        val_split=None,
        ema=False,
        precise_bn_batches=0,
        epochs=1,
        batch_size=8,
        max_iterations=1,
        num_workers=0,
        tensorboard=False,
        device="cpu",
        out_dir=str(tmp_path),
    )
    result = train(config)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    trained = read_checkpoint(result.checkpoint)["network"]["options"]
    assert written["recipe"] == "lite" and written["anchors"] == "auto"
    assert written["network_options"] == trained and "sizes" in trained  # what the model was built with
