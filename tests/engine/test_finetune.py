"""``finetune=FILE``: training starts from a whole trained detector of other classes; ``freeze`` names."""

from __future__ import annotations

import pytest
import torch

from multibox.checkpoint import atomic_save, make_checkpoint, network_description
from multibox.engine.config import TrainConfig
from multibox.engine.optim import freeze_parameters, freeze_pattern
from multibox.engine.train import train
from multibox.engine.train_setup import build_model
from multibox.errors import ConfigError
from multibox.inference.checkpoint_model import model_from_checkpoint
from multibox.model import build_ssd

SOURCE_CLASSES = ["star", "dog", "circle", "cat"]
SHAPES = ["circle", "square", "triangle", "star"]  # the classes of the synthetic shapes:N data
FAST = dict(
    train_data="shapes:16",
    network="tiny",
    data_shape=64,
    batch_size=8,
    num_workers=0,
    tensorboard=False,
    device="cpu",
    val_split=None,
)


@pytest.fixture
def source_checkpoint(tmp_path):
    """A tiny detector of four classes, two of them shapes (circle, star), with drawn weights."""
    torch.manual_seed(3)
    model = build_ssd("tiny", len(SOURCE_CLASSES), 64)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.2)
    state = make_checkpoint(
        model.state_dict(), SOURCE_CLASSES, network_description("tiny", 4, 64, {}), model.detection.to_dict()
    )
    return model.eval(), atomic_save(state, tmp_path / "source.pt")


def test_training_starts_from_the_whole_detector_with_its_classes_by_name(
    source_checkpoint, tmp_path, capsys
):
    source, path = source_checkpoint
    config = TrainConfig(**FAST, finetune=str(path), out_dir=str(tmp_path / "run")).checked()
    model = build_model(config, SHAPES, rank=0).eval()
    assert (
        "classes kept 2 (circle, star), new 2 (square, triangle), dropped 2 (dog, cat)"
        in capsys.readouterr().err
    )
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        (source_loc, source_cls), (loc, cls) = source(images), model(images)
    torch.testing.assert_close(loc, source_loc, rtol=0, atol=0)  # boxes: the whole localisation path kept
    for row, source_row in [(0, 0), (1, 3), (4, 1)]:  # background, circle, star
        torch.testing.assert_close(cls[:, row], source_cls[:, source_row], rtol=0, atol=0)


def test_a_finetune_run_trains_and_writes_a_checkpoint_of_the_new_classes(source_checkpoint, tmp_path):
    _, path = source_checkpoint
    result = train(
        TrainConfig(**FAST, finetune=str(path), epochs=1, max_iterations=1, out_dir=str(tmp_path / "r"))
    )
    assert result.class_names == SHAPES and result.checkpoint.is_file()


def test_finetune_mistakes_are_one_line_config_errors(source_checkpoint, tmp_path):
    _, path = source_checkpoint
    with pytest.raises(ConfigError, match="finetune .*source.pt is a tiny detector; set network=tiny"):
        build_model(
            TrainConfig(**{**FAST, "network": "mobilenet_v2"}, finetune=str(path)).checked(), SHAPES, 0
        )
    with pytest.raises(ConfigError, match="finetune and weights_backbone both given"):
        TrainConfig(**FAST, finetune=str(path), weights_backbone="w.pt").checked()
    with pytest.raises(FileNotFoundError, match="checkpoint .*missing.pt does not exist"):
        build_model(TrainConfig(**FAST, finetune=str(tmp_path / "missing.pt")).checked(), SHAPES, 0)


@pytest.mark.parametrize(
    ("freeze", "trainable"),
    [
        ("backbone", lambda name: not name.startswith("backbone.")),
        ("all_but_heads", lambda name: "_pred_conv." in name),
        ("default", lambda name: True),  # tiny freezes nothing by default
    ],
)
def test_named_freeze_choices(freeze, trainable):
    model = build_ssd("tiny", 2, 64)
    freeze_parameters(model, freeze_pattern(freeze, network_default=None))
    names = [name for name, _ in model.named_parameters()]
    assert [name for name, p in model.named_parameters() if p.requires_grad] == [
        n for n in names if trainable(n)
    ]
    assert TrainConfig(**FAST, freeze=freeze).checked().freeze == freeze


def test_a_coco_layout_detector_fine_tuned_onto_some_of_its_classes_predicts_them_as_before(tmp_path):
    import torchvision

    from multibox.model.import_torchvision import checkpoint_of

    torch.manual_seed(5)
    coco = torchvision.models.detection.ssdlite320_mobilenet_v3_large(
        weights=None, weights_backbone=None
    ).eval()
    state = checkpoint_of(coco)  # torchvision's 91-index COCO layout: class i is COCO category id i + 1
    path = atomic_save(state, tmp_path / "coco.pt")
    source = model_from_checkpoint(state).eval()
    ours = ["dog", "person", "platelet", "car"]  # three COCO classes and a new one
    config = TrainConfig(
        **{**FAST, "network": "torchvision_ssdlite320_mobilenet_v3_large", "data_shape": 320},
        finetune=str(path),
    )
    model = build_model(config.checked(), ours, rank=0).eval()
    images = torch.randint(0, 256, (1, 3, 320, 320), dtype=torch.uint8)
    with torch.no_grad():
        (source_loc, source_cls), (loc, cls) = source(images), model(images)
    torch.testing.assert_close(loc, source_loc, rtol=0, atol=0)
    names = state["class_names"]
    close = dict(rtol=1e-5, atol=1e-6 * float(source_cls.abs().max()))  # a conv of other width rounds apart
    for row, name in enumerate(ours, start=1):
        if name in names:
            torch.testing.assert_close(cls[:, row], source_cls[:, names.index(name) + 1], **close)
    torch.testing.assert_close(cls[:, 0], source_cls[:, 0], **close)  # background


def test_a_fine_tune_keeps_the_detectors_input_normalisation(tmp_path):
    options = {"image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.25, 0.3]}  # e.g. an imported detector's
    source = build_ssd("tiny", 2, 64, **options)
    network = network_description("tiny", 2, 64, options)
    state = make_checkpoint(source.state_dict(), ["circle", "dog"], network, source.detection.to_dict())
    path = atomic_save(state, tmp_path / "normalised.pt")
    model = build_model(TrainConfig(**FAST, finetune=str(path)).checked(), SHAPES, rank=0)
    torch.testing.assert_close(model.input_scale, source.input_scale)
    torch.testing.assert_close(model.input_shift, source.input_shift)
    other = TrainConfig(**FAST, finetune=str(path), network_options={"image_std": [1.0, 1.0, 1.0]}).checked()
    with pytest.raises(ConfigError, match="was built with network_options .*leave network_options out"):
        build_model(other, SHAPES, rank=0)
