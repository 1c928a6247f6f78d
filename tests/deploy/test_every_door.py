"""One trained checkpoint, every door: SSD.predict, the Python detector, ONNX, TorchScript and the HTTP API give
the same detections, decoded with the settings stored in the checkpoint."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from multibox.checkpoint import atomic_save, read_checkpoint
from multibox.deploy import OnnxDetector, TorchDetector, TorchScriptDetector, export_checkpoint
from multibox.inference import load_checkpoint_model, read_image
from multibox.model import DetectionSettings

THRESHOLD = 0.3
STORED = DetectionSettings(nms_threshold=0.3, nms_topk=100, max_detections=25)  # not the defaults


@pytest.fixture(scope="module")
def checkpoint(bccd_checkpoint, tmp_path_factory):
    """The trained fixture with other detection settings stored in it."""
    state = read_checkpoint(bccd_checkpoint)
    state["detection"] = STORED.to_dict()
    return atomic_save(state, tmp_path_factory.mktemp("doors") / "model.pt")


@pytest.fixture(scope="module")
def images(bccd_subset) -> list[Image.Image]:
    test_ids = (bccd_subset / "ImageSets" / "Main" / "test.txt").read_text().split()[:6]
    return [read_image(bccd_subset / "JPEGImages" / f"{i}.jpg") for i in test_ids]


def _as_numpy(result: dict) -> dict[str, np.ndarray]:
    return {k: np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v) for k, v in result.items()}


def _assert_same(got: list[dict], expected: list[dict], image_size: tuple[int, int]) -> None:
    scale = max(image_size)
    for a, b in zip(got, expected, strict=True):
        a, b = _as_numpy(a), _as_numpy(b)
        assert a["labels"].tolist() == b["labels"].tolist()
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-4)
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-3 * scale)


def _http_answers(detector, images) -> list[dict]:
    from fastapi.testclient import TestClient

    from multibox.serve.app import create_app

    client = TestClient(create_app(detector))
    answers = []
    for image in images:
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")  # lossless: the server decodes the very pixels the others see
        reply = client.post(
            "/v1/detect", files={"file": ("x.png", buffer.getvalue())}, params={"threshold": THRESHOLD}
        )
        assert reply.status_code == 200, reply.text
        found = reply.json()["detections"]
        answers.append(
            {
                "labels": np.array([d["class_id"] for d in found], np.int64),
                "scores": np.array([d["score"] for d in found], np.float32),
                "boxes": np.array([d["box"] for d in found], np.float32).reshape(-1, 4),
            }
        )
    return answers


def test_every_door_gives_the_same_detections_with_the_stored_settings(checkpoint, images, tmp_path):
    model, _, _ = load_checkpoint_model(checkpoint)
    assert model.detection == STORED
    python = TorchDetector(checkpoint).predict(images, threshold=THRESHOLD)
    assert all(len(r["labels"]) <= STORED.max_detections for r in python)
    tensors = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]
    predicted = [
        {k: v for k, v in zip(("boxes", "scores", "labels"), _sorted(r), strict=True)}
        for r in model.predict(tensors, threshold=THRESHOLD)
    ]
    _assert_same(predicted, python, images[0].size)
    onnx = export_checkpoint(checkpoint, "onnx", out=tmp_path / "m.onnx", dynamic_batch=True)
    torchscript = export_checkpoint(checkpoint, "torchscript", out=tmp_path / "m.torchscript")
    assert onnx.metadata["detection"] == STORED.to_dict() == torchscript.metadata["detection"]
    _assert_same(OnnxDetector(onnx.path).predict(images, threshold=THRESHOLD), python, images[0].size)
    _assert_same(
        TorchScriptDetector(torchscript.path).predict(images, threshold=THRESHOLD), python, images[0].size
    )
    _assert_same(_http_answers(TorchDetector(checkpoint), images), python, images[0].size)
    # the stored settings are really the ones used: the default ones decode these images differently
    default = TorchDetector(checkpoint)
    default.model.detection = DetectionSettings()
    assert [len(r["labels"]) for r in default.predict(images, threshold=THRESHOLD)] != [
        len(r["labels"]) for r in python
    ]


def _sorted(result: dict) -> tuple:
    order = torch.argsort(-result["scores"], stable=True)
    return result["boxes"][order], result["scores"][order], result["labels"][order]
