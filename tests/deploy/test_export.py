"""Exported files against the PyTorch model on the bccd subset's test images: the acceptance test of export."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from multibox.data import load_dataset, make_loader
from multibox.deploy import (
    DeployableSSD,
    DetectionSettings,
    OnnxDetector,
    TorchDetector,
    TorchScriptDetector,
    compare_detections,
    export_checkpoint,
)
from multibox.engine.evaluate import evaluate
from multibox.inference import load_detector, read_image


@pytest.fixture(scope="module")
def trained(bccd_checkpoint):
    model, class_names = load_detector(bccd_checkpoint)
    return model, class_names


@pytest.fixture(scope="module")
def bccd_test(bccd_subset, trained):
    model, class_names = trained
    dataset = load_dataset(str(bccd_subset), "test", class_names=class_names)
    loader = make_loader(dataset, 16, train=False, data_shape=model.data_shape)
    return dataset, loader


@pytest.fixture(scope="module")
def exported(bccd_checkpoint, tmp_path_factory):
    out = tmp_path_factory.mktemp("exported")
    onnx_result = export_checkpoint(bccd_checkpoint, "onnx", out=out / "model.onnx", dynamic_batch=True)
    ts_result = export_checkpoint(bccd_checkpoint, "torchscript", out=out / "model.torchscript")
    return onnx_result, ts_result


def test_export_writes_the_file_a_sidecar_and_checks_itself(exported, trained):
    _, class_names = trained
    for result, fmt in zip(exported, ("onnx", "torchscript"), strict=True):
        assert result.path.is_file() and result.check.ok
        sidecar = json.loads(result.sidecar.read_text())
        assert sidecar["format"] == fmt and sidecar["class_names"] == class_names
        assert sidecar["data_shape"] == [160, 160] and sidecar["detection"]["nms_threshold"] == 0.45
    proto = onnx.load(str(exported[0].path))
    assert proto.opset_import[0].version >= 17
    ops = {node.op_type for node in proto.graph.node}
    assert "NonMaxSuppression" in ops
    # the network's BatchNorms are folded into its convs (what makes vgg16_reduced_bn's file vgg16_reduced's)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in trained[0].modules())
    assert "Conv" in ops and "BatchNormalization" not in ops
    assert [i.name for i in proto.graph.input] == ["images"]
    assert [o.name for o in proto.graph.output] == ["boxes", "scores", "classes", "count"]


def _all_detections(detector, loader) -> np.ndarray:
    return np.concatenate([detector.detect(images, per_class=True).numpy() for images, _ in loader])


def test_onnx_and_torchscript_detections_equal_pytorch_on_bccd_test(exported, trained, bccd_test):
    model, _ = trained
    _, loader = bccd_test
    with torch.no_grad():
        reference = _all_detections(model, loader)  # multibox.ops per-class decoding, as evaluation uses
    assert len(reference) == 24 and (reference[..., 0] >= 0).sum() > 24 * 20  # the subset's 24 test images
    for runner in (OnnxDetector(exported[0].path), TorchScriptDetector(exported[1].path)):
        agreement = compare_detections(reference, _all_detections(runner, loader), 1e-3, 1e-4)
        assert agreement.ok, f"{runner.format}: {agreement}"


def test_voc_map_of_every_path_is_equal_to_three_decimals(exported, trained, bccd_test):
    model, class_names = trained
    _, loader = bccd_test
    maps = {
        name: evaluate(detector, loader, class_names)["mAP_voc07"]
        for name, detector in [
            ("pytorch", model),
            ("onnx", OnnxDetector(exported[0].path)),
            ("torchscript", TorchScriptDetector(exported[1].path)),
        ]
    }
    assert maps["pytorch"] > 0.4
    assert len({round(v, 3) for v in maps.values()}) == 1, maps


def test_predict_on_photos_of_any_size_matches_the_checkpoint(exported, bccd_checkpoint, bccd_subset):
    images = [read_image(p) for p in sorted((bccd_subset / "JPEGImages").glob("*.jpg"))[:5]]
    reference = TorchDetector(bccd_checkpoint).predict(images, threshold=0.3)
    got = OnnxDetector(exported[0].path).predict(images, threshold=0.3)
    for ref, det, image in zip(reference, got, images, strict=True):
        assert len(ref["labels"]) == len(det["labels"]) > 0
        np.testing.assert_array_equal(np.sort(ref["labels"]), np.sort(det["labels"]))
        np.testing.assert_allclose(np.sort(ref["scores"]), np.sort(det["scores"]), atol=1e-4)
        scale = max(image.size)
        np.testing.assert_allclose(
            ref["boxes"][np.lexsort(ref["boxes"].T)],
            det["boxes"][np.lexsort(det["boxes"].T)],
            atol=1e-3 * scale,
        )


@pytest.mark.parametrize(("per_class", "force_suppress"), [(True, True), (False, False), (False, True)])
def test_every_decoding_mode_equals_multibox_detection(trained, bccd_test, per_class, force_suppress):
    model, _ = trained
    images, _ = next(iter(bccd_test[1]))
    settings = DetectionSettings(per_class=per_class, force_suppress=force_suppress, max_detections=100)
    with torch.no_grad():
        boxes, scores, classes, count = DeployableSSD(model, settings).eval()(images)
        reference = model.detect(images, per_class=per_class, force_suppress=force_suppress, threshold=0.01)
    got = torch.cat([classes.unsqueeze(-1).float(), scores.unsqueeze(-1), boxes], -1).numpy()
    # MXNet decoding returns every anchor's row, kept ones in score order: keep the best 100 kept rows
    ref = np.full((len(images), 100, 6), -1.0, np.float32)
    for i, rows in enumerate(reference.numpy()):
        rows = rows[rows[:, 0] >= 0]
        rows = rows[np.argsort(-rows[:, 1], kind="stable")][:100]
        ref[i, : len(rows)] = rows
    assert (count > 0).all()
    assert compare_detections(ref, got, 1e-6, 1e-6).ok


def test_fixed_batch_onnx_pads_and_mxnet_mode_exports(bccd_checkpoint, trained, bccd_test, tmp_path):
    model, _ = trained
    settings = DetectionSettings(per_class=False, max_detections=50)
    result = export_checkpoint(
        bccd_checkpoint, "onnx", out=tmp_path / "b2.onnx", batch_size=2, settings=settings
    )
    runner = OnnxDetector(result.path)
    assert runner.batch_size == 2 and result.check.ok
    images = next(iter(bccd_test[1]))[0][:5]  # 5 images through a batch-2 file: 2 + 2 + (1 padded)
    with torch.no_grad():
        boxes, scores, classes, _ = DeployableSSD(model, settings).eval()(images)
    reference = torch.cat([classes.unsqueeze(-1).float(), scores.unsqueeze(-1), boxes], -1).numpy()
    assert compare_detections(reference, runner.detect(images).numpy()).ok
    with pytest.raises(ValueError, match="exported with per_class=False"):
        runner.detect(images, per_class=True)
    with pytest.raises(ValueError, match="lower one"):
        runner.detect(images, threshold=0.001)
    higher = runner.detect(images, threshold=0.5).numpy()
    assert (higher[higher[..., 0] >= 0][:, 1] >= 0.5).all()


def test_torchscript_file_runs_with_torch_alone(exported, tmp_path):
    script = f"""
import sys, torch
module = torch.jit.load({str(exported[1].path)!r})
images = torch.randint(0, 256, (3, 3, 211, 307), dtype=torch.uint8)
boxes, scores, classes, count = module(images)
assert boxes.shape[:2] == scores.shape == classes.shape and count.shape == (3,)
assert "multibox" not in sys.modules and "torchvision" not in sys.modules, sorted(sys.modules)
print("ok", count.tolist())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok")


def test_bad_requests_are_clear_errors(bccd_checkpoint, tmp_path):
    with pytest.raises(ValueError, match="format must be one of"):
        export_checkpoint(bccd_checkpoint, "tflite")
    with pytest.raises(FileNotFoundError):
        export_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="nms_topk must be >= 1"):
        DetectionSettings(nms_topk=-1)
    with pytest.raises(FileNotFoundError):
        OnnxDetector(Path(tmp_path / "missing.onnx"))


def test_another_data_shape_uses_that_shapes_anchors(bccd_checkpoint, trained, bccd_test, tmp_path):
    model, _ = trained
    result = export_checkpoint(
        bccd_checkpoint, "torchscript", out=tmp_path / "s192.torchscript", data_shape=192
    )
    assert result.metadata["data_shape"] == [192, 192] and result.check.ok
    images = next(iter(bccd_test[1]))[0][:4]
    resized = torch.nn.functional.interpolate(
        images.float(), size=(192, 192), mode="bilinear", antialias=True
    )
    resized = resized.round().clamp(0, 255).to(torch.uint8)
    with torch.no_grad():
        reference = model.detect(resized, per_class=True, threshold=0.01).numpy()  # anchors for 192 x 192
    got = TorchScriptDetector(result.path).detect(resized).numpy()
    assert compare_detections(reference, got, 1e-5, 1e-5).ok
