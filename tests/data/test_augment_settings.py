"""Crop samplers and colour jitter from YAML and the command line: the real objects, or one line naming the key."""

import numpy as np
import pytest
from PIL import Image

from multibox.cli import main
from multibox.data import TrainAugmentation
from multibox.data.augment import ColourJitter, CropSampler
from multibox.engine.config import load_config
from multibox.engine.recipes import augmentation_keywords
from multibox.errors import ConfigError

YAML = """\
augment: light
augmentation:
  expand_prob: 0
  samplers:
    - {min_iou: 0.3, min_scale: 0.5, max_trials: 10}
    - {min_iou: 0.7, max_aspect: 1.5}
  colour: {max_hue: 9, hue_prob: 1.0, max_contrast: 2e-1}
"""


def _augmentation(config) -> TrainAugmentation:
    return TrainAugmentation(data_shape=(32, 32), **augmentation_keywords(config))


def test_a_yaml_config_builds_the_samplers_and_the_jitter_it_gives(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    augmentation = _augmentation(load_config(path))
    assert augmentation.samplers == (
        CropSampler(min_iou=0.3, min_scale=0.5, max_trials=10),
        CropSampler(min_iou=0.7, max_aspect=1.5),
    )
    assert augmentation.crop_prob == pytest.approx(2 / 3)  # n / (n + 1) of the two samplers
    # the light strength has no jitter; the mapping turns it on, other fields the original's
    assert augmentation.colour == ColourJitter(max_hue=9, hue_prob=1.0, max_contrast=0.2)
    assert augmentation.expand_prob == 0


def test_dotted_command_line_keys_set_one_field_and_keep_the_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(YAML)
    config = load_config(
        path, ["augmentation.colour.max_hue=4", "augmentation.samplers=[{min_iou: 0.5}]", "augment=original"]
    )
    assert config.augmentation["colour"] == {"max_hue": 4, "hue_prob": 1.0, "max_contrast": "2e-1"}
    augmentation = _augmentation(config)
    assert augmentation.samplers == (CropSampler(min_iou=0.5),)
    assert augmentation.colour == ColourJitter(max_hue=4, hue_prob=1.0, max_contrast=0.2)
    plain = load_config(None, ["augment=light", "augmentation.colour=true", "augmentation.mirror_prob=0"])
    assert _augmentation(plain).colour == ColourJitter() and _augmentation(plain).mirror_prob == 0
    assert _augmentation(load_config(None, ["augment=original", "augmentation.colour=null"])).colour is None
    whole = load_config(None, ["augmentation={samplers: []}", "augmentation.crop_prob=0.5"])
    assert whole.augmentation == {"samplers": [], "crop_prob": 0.5}


def test_the_given_sampler_decides_the_crop():
    """One sampler of a fixed half-size square crop, always tried: a small central box doubles in size (crop
    units), unless the crop's border cuts it."""
    config = load_config(
        None,
        [
            "augment=light",
            "augmentation.samplers=[{min_scale: 0.5, max_scale: 0.5, min_aspect: 1, max_aspect: 1}]",
            "augmentation.crop_prob=1",
        ],
    )
    augmentation = _augmentation(config)
    image = Image.new("RGB", (100, 100))
    for seed in range(10):
        _, boxes, _, _ = augmentation(
            image, np.array([[48, 48, 52, 52]]), np.array([0]), np.array([False]), np.random.default_rng(seed)
        )
        ((x1, y1, x2, y2),) = boxes
        for low, high in ((x1, x2), (y1, y2)):
            assert high - low == pytest.approx(0.08, abs=1e-6) or low == 0 or high == 1


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "augmentation.samplers=[{min_overlap: 0.5}]",
            r"augmentation.samplers\[0\]: unknown key 'min_overlap'; valid: min_iou",
        ),
        (
            "augmentation.colour.brightness=0.2",
            "augmentation.colour: unknown key 'brightness'; valid: max_hue",
        ),
        ("augmentation.colour.max_hue=nine", "augmentation.colour.max_hue expects an integer, got 'nine'"),
        ("augmentation.colour.max_hue=2.5", "augmentation.colour.max_hue expects an integer, got 2.5"),
        ("augmentation.colour.max_hue=200", r"augmentation.colour.max_hue must be in \[0, 180\]"),
        ("augmentation.colour.hue_prob=-0.1", r"augmentation.colour.hue_prob must be in \[0, 1\], got -0.1"),
        ("augmentation.colour=[1]", "augmentation.colour expects a mapping of max_hue"),
        (
            "augmentation.samplers=[{}, {min_iou: 1.5}]",
            r"augmentation.samplers\[1\].min_iou must be in \[0, 1\]",
        ),
        (
            "augmentation.samplers=[{max_trials: true}]",
            r"samplers\[0\].max_trials expects an integer, got True",
        ),
        ("augmentation.samplers=[{min_scale: 0.8, max_scale: 0.5}]", "min_scale 0.8 is above max_scale 0.5"),
        ("augmentation.samplers={min_iou: 0.5}", "augmentation.samplers expects a list of sampler mappings"),
        ("augmentation.expnd_prob=0", "augmentation.expnd_prob: unknown key; valid: .*expand_prob"),
        ("augmentation.data_shape=64", "augmentation.data_shape: unknown key"),
        ("augmentation.expand_prob=2", r"augmentation.expand_prob must be in \[0, 1\], got 2"),
        ("lr.x=1", "lr.x: lr is not a mapping"),
    ],
)
def test_a_bad_key_is_one_line_naming_it(override, message):
    with pytest.raises(ConfigError, match=message) as error:
        load_config(None, [override])
    assert "\n" not in str(error.value)


def test_a_bad_yaml_mapping_is_refused_before_training(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("augmentation:\n  samplers:\n    - {min_iou: 0.5, max_sampels: 3}\n")
    assert main(["train", "--config", str(path), f"out_dir={tmp_path / 'run'}"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "augmentation.samplers[0]: unknown key 'max_sampels'" in error
    assert not (tmp_path / "run").exists()
