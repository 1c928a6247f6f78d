"""Checkpoint -> model -> detections in image pixels, the same as ``SSD.predict`` (one resize, one rescale)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multibox.checkpoint import atomic_save, make_checkpoint, network_description
from multibox.errors import DataError
from multibox.inference import Detector, TorchDetector, detect_images, load_checkpoint_model
from multibox.model import build_ssd
from tests.checkpoint_helpers import save_model_checkpoint


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_ssd("tiny", 3, 64).eval()


@pytest.fixture(scope="module")
def images() -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for h, w in [(48, 80), (100, 30)]
    ]


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> str:
    return save_model_checkpoint(
        model, "tiny", ["a", "b", "c"], 64, tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    )


def test_detect_images_equals_ssd_predict_in_each_images_pixels(model, images):
    found = detect_images(model, images, threshold=0.0, batch_size=1)
    tensors = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]
    expected = model.predict(tensors, threshold=0.0)
    for ours, theirs, image in zip(found, expected, images, strict=True):
        assert len(ours["scores"]) > 0
        np.testing.assert_allclose(ours["boxes"], theirs["boxes"].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(ours["labels"], theirs["labels"].numpy())
        assert (
            ours["boxes"][:, [0, 2]].max() <= image.width and ours["boxes"][:, [1, 3]].max() <= image.height
        )


def test_a_checkpoint_gives_back_the_model_and_its_detector(model, images, checkpoint):
    loaded, class_names, network = load_checkpoint_model(checkpoint)
    assert class_names == ["a", "b", "c"] and network["name"] == "tiny" and not loaded.training
    detector = TorchDetector(checkpoint)
    assert isinstance(detector, Detector)
    (found,) = detector.predict(images[:1], threshold=0.05)
    (expected,) = detect_images(model, images[:1], threshold=0.05)
    order = np.argsort(-expected["scores"], kind="stable")
    np.testing.assert_allclose(found["boxes"], expected["boxes"][order], rtol=1e-5)
    assert np.all(np.diff(found["scores"]) <= 0) and found["boxes"].dtype == np.float32


def test_weights_of_another_network_are_a_damaged_file(model, tmp_path):
    network = network_description("tiny", 5, 64, {})  # the weights are for 3 classes
    state = make_checkpoint(model.state_dict(), list("abcde"), network, {})
    path = atomic_save(state, tmp_path / "wrong.pt")
    with pytest.raises(DataError, match="do not fit a tiny network of 5 classes"):
        load_checkpoint_model(path)
