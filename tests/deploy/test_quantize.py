"""INT8 and FP16 files of ``multibox export``: what is quantized, how close the detections stay, the accuracy
check that refuses a bad file, and the one-line errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from multibox.cli import main
from multibox.data import DetectionDataset, DetectionRecord, load_dataset, save_dataset
from multibox.deploy import OnnxDetector, export_checkpoint
from multibox.deploy.calibration import CalibrationImages, split_for_calibration
from multibox.deploy.quantize import (
    AccuracyCheck,
    network_boundary,
    network_nodes,
    place_checked,
    quantize_int8,
    rejected_path,
)
from multibox.errors import ConfigError, DataError
from multibox.ops.boxes import box_iou

DECODING_STARTS = ("Softmax", "Exp")  # the first operators of the decoding: class scores and box sizes


@pytest.fixture(scope="module")
def float_onnx(bccd_checkpoint, tmp_path_factory):
    """The trained tiny fixture (160 px) as a float ONNX file, fixed batch 1."""
    return export_checkpoint(bccd_checkpoint, "onnx", out=tmp_path_factory.mktemp("float") / "m.onnx").path


@pytest.fixture(scope="module")
def calibration_records(bccd_subset):
    dataset = load_dataset(str(bccd_subset), "train", class_names=["Platelets", "RBC", "WBC"])
    return dataset.records[:8]


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _downstream_of(graph: onnx.GraphProto, op_types: tuple[str, ...]) -> list[onnx.NodeProto]:
    """The nodes that consume, directly or not, the output of a node of ``op_types`` (those included)."""
    reached, found = set(), []
    for node in graph.node:  # topological order
        if node.op_type in op_types or any(t in reached for t in node.input):
            reached.update(node.output)
            found.append(node)
    return found


def _rows(detector: OnnxDetector, records) -> np.ndarray:
    """``(N, K, 6)`` detections of the images as the calibration reader feeds them."""
    images = CalibrationImages(records, detector.data_shape, 1)
    return np.concatenate([detector.detect(images.batch(i)).numpy() for i in range(len(images))])


def _assert_confident_detections_kept(reference: np.ndarray, other: np.ndarray, score_tolerance: float):
    """Every reference row with score >= 0.5 has a row of ``other`` of its class, IoU > 0.5 (VOC's rule for
    the same object) and a score within ``score_tolerance``."""
    confident = 0
    for ref, oth in zip(reference, other, strict=True):
        for row in ref[(ref[:, 0] >= 0) & (ref[:, 1] >= 0.5)]:
            same = oth[oth[:, 0] == row[0]]
            iou = box_iou(torch.from_numpy(row[None, 2:]), torch.from_numpy(same[:, 2:])).numpy()[0]
            close = (iou > 0.5) & (np.abs(same[:, 1] - row[1]) <= score_tolerance)
            assert close.any(), f"row {row} lost (best IoU {iou.max(initial=0):.2f})"
            confident += 1
    assert confident >= len(reference)  # at least one confident cell per blood-smear image


def test_the_network_is_told_from_preprocessing_and_decoding(float_onnx):
    graph = onnx.load(str(float_onnx)).graph
    inside = set(network_nodes(graph, network_boundary(onnx.load(str(float_onnx)))))
    ops = {node.name: node.op_type for node in graph.node}
    convs = {name for name, op in ops.items() if op == "Conv"}
    assert convs and convs <= inside  # every convolution is the SSD's
    outside_ops = {ops[name] for name in ops if name not in inside}
    assert {"Resize", "Softmax", "Exp", "NonMaxSuppression", "TopK"} <= outside_ops
    assert not {"Resize", "Softmax", "Exp", "NonMaxSuppression", "TopK"} & {ops[n] for n in inside}


@pytest.mark.parametrize("method", ["minmax", "entropy", "percentile"])
def test_int8_quantizes_the_convolutions_only_and_keeps_the_detections(
    float_onnx, calibration_records, tmp_path, method
):
    reader = CalibrationImages(calibration_records, (160, 160))
    path = quantize_int8(float_onnx, tmp_path / "m.int8.onnx", reader, method)
    graph = onnx.load(str(path)).graph
    producers = _producers(graph)
    convs = [node for node in graph.node if node.op_type == "Conv"]
    assert len(convs) == sum(node.op_type == "Conv" for node in onnx.load(str(float_onnx)).graph.node)
    for conv in convs:  # activation and weights both come through a DequantizeLinear
        assert [producers[t].op_type for t in conv.input[:2]] == ["DequantizeLinear"] * 2, conv.name
    decoding = _downstream_of(graph, DECODING_STARTS)
    assert {"NonMaxSuppression", "TopK"} <= {node.op_type for node in decoding}
    assert not [n.name for n in decoding if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    for node in graph.node:
        if node.op_type in DECODING_STARTS:
            assert producers[node.input[0]].op_type != "DequantizeLinear"

    int8, reference = OnnxDetector(path), OnnxDetector(float_onnx)
    assert int8.metadata["precision"] == "int8" and int8.class_names == reference.class_names
    # The tolerance, from how 8-bit rounding adds up. On its own calibration images nothing is clipped (entropy
    # and percentile clip rare outliers only): each
    # quantized tensor only rounds, uniformly within half a step (step = its range / 255), a standard
    # deviation of range / 883. tiny's deepest path rounds some 30 tensors (activations and per-channel
    # weights of ~15 convolutions); independent errors add in quadrature to sqrt(30) / 883 = 0.6 % of a
    # tensor's range. Trained logits span some 20 (scores from 1e-4 to 0.9999 are gaps of +-9), so a logit
    # moves by 0.12 (one standard deviation), 0.36 at three, and a softmax score by at most half of its
    # logits' largest move (its gradient's L1 norm is 2p(1 - p) <= 1/2): 0.18. Hence 0.2 in score; boxes
    # move by a few percent of their size, well inside VOC's IoU > 0.5 for the same object.
    _assert_confident_detections_kept(
        _rows(reference, calibration_records), _rows(int8, calibration_records), 0.2
    )


def test_export_int8_checks_the_map_and_detect_and_evaluate_take_the_file(
    float_onnx, bccd_subset, tmp_path, capsys
):
    out = tmp_path / "m.int8.onnx"
    # the float file of the trained fixture: quantized without exporting it again (export is tested elsewhere)
    args = ["export", str(float_onnx), "--int8", "--calibration", str(bccd_subset)]
    args += ["--calibration-split", "train", "--calibration-images", "8", "--check-images", "24"]
    # 24 held-out images score mAP with a resolution of a few hundredths; 0.1 is a gross-loss check
    assert main([*args, "--max-map-drop", "0.1", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    line = next(s for s in printed.splitlines() if s.startswith("VOC07 mAP on 24 held-out images"))
    sidecar = json.loads((tmp_path / "m.int8.onnx.json").read_text())
    check = sidecar["accuracy_check"]
    assert f"float {check['float_mAP_voc07']:.4f}, int8 {check['int8_mAP_voc07']:.4f}" in line
    assert check["float_mAP_voc07"] > 0.4 and check["drop"] <= 0.1  # the trained fixture scores ~0.6
    assert sidecar["precision"] == "int8" and sidecar["quantization"]["calibration_images"] == 8
    assert OnnxDetector(out).metadata == sidecar  # the sidecar is what the file carries
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.int8.onnx", "m.int8.onnx.json"]

    image = sorted((bccd_subset / "JPEGImages").glob("*.jpg"))[0]
    detect = ["detect", str(image), "--onnx", str(out), "--out", str(tmp_path / "detect")]
    assert main(detect) == 0
    assert json.loads((tmp_path / "detect" / "detections.json").read_text())[0]["detections"]
    evaluate = ["evaluate", "--checkpoint", str(out), "--data", str(bccd_subset), "--split", "test"]
    assert main([*evaluate, "--out", str(tmp_path / "evaluation")]) == 0
    assert "mAP" in capsys.readouterr().out


def test_a_calibration_that_ruins_the_model_is_refused_in_one_line(float_onnx, bccd_subset, tmp_path, capsys):
    classes = ["Platelets", "RBC", "WBC"]
    black = [DetectionRecord(f"black{i}", lambda: Image.new("RGB", (160, 160)), 160, 160) for i in range(2)]
    test = load_dataset(str(bccd_subset), "test", class_names=classes).records[:12]
    data = save_dataset(DetectionDataset(black + test, classes), tmp_path / "mixed", "voc", "mix")
    out = tmp_path / "bad.int8.onnx"
    # Calibrated on black images only, the first convolution's input range is a black image's (normalised
    # -2..0), so every pixel brighter than mid-grey clips to mid-grey: on the bright blood smears the INT8
    # network sees another picture, and its mAP cannot stay within 0.01 of the float file's.
    args = [
        "export",
        str(float_onnx),  # an exported float file: quantized without exporting again
        "--int8",
        "--calibration",
        str(data),
        "--calibration-split",
        "mix",
    ]
    assert main([*args, "--calibration-images", "2", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "INT8 accuracy check failed" in err and "nothing written" in err
    assert not out.exists() and not rejected_path(out).exists()
    assert [p.name for p in tmp_path.iterdir()] == ["mixed"]  # no scratch folder left behind


def test_a_failed_check_keeps_the_file_only_under_a_marked_name(tmp_path):
    out = tmp_path / "m.int8.onnx"
    for keep in (False, True):
        candidate = tmp_path / "candidate.onnx"
        candidate.write_bytes(b"int8")
        with pytest.raises(DataError, match="drop 0.0200 \\(allowed 0.0100\\)"):
            place_checked(candidate, out, AccuracyCheck(10, 0.60, 0.58, 0.01), keep_anyway=keep)
        assert not out.exists() and not candidate.exists()
        assert rejected_path(out).exists() == keep
    assert rejected_path(out).name == "m.int8.REJECTED.onnx"
    candidate.write_bytes(b"int8")
    assert place_checked(candidate, out, AccuracyCheck(10, 0.60, 0.59, 0.01)) == out  # a drop of 0.01 passes
    assert out.read_bytes() == b"int8"


def test_fp16_halves_the_network_and_keeps_the_decoding_in_float32(
    float_onnx, calibration_records, tmp_path, capsys
):
    path = tmp_path / "m.fp16.onnx"
    assert main(["export", str(float_onnx), "--fp16", "--out", str(path)]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {path}" in printed and "float16 network for GPUs" in printed
    assert (
        "runs in ONNX Runtime's CPU provider too" in printed
    )  # ONNX Runtime >= 1.2x has float16 CPU kernels
    assert path.stat().st_size < 0.6 * float_onnx.stat().st_size  # the weights take half the bytes
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    graph = model.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.value_info, *graph.input, *graph.output]}
    types.update({t.name: t.data_type for t in graph.initializer})
    for conv in (node for node in graph.node if node.op_type == "Conv"):
        assert types[conv.input[0]] == types[conv.input[1]] == onnx.TensorProto.FLOAT16, conv.name
    for node in _downstream_of(graph, DECODING_STARTS):
        assert onnx.TensorProto.FLOAT16 not in {types.get(t) for t in node.input}, node.name
    assert [i.type.tensor_type.elem_type for i in graph.input] == [onnx.TensorProto.UINT8]
    assert [types[o.name] for o in graph.output[:2]] == [onnx.TensorProto.FLOAT] * 2
    half, reference = OnnxDetector(path), OnnxDetector(float_onnx)
    assert half.metadata["precision"] == "fp16"
    # float16 keeps 11 significant bits: each stored value rounds by a standard deviation of 2^-11 / sqrt(12)
    # = 0.014 % of itself. Some 30 rounded tensors on tiny's deepest path add in quadrature to 0.08 %, 0.008
    # of a logit of 10, and three standard deviations move a score by at most half of 0.024. 0.05 leaves four
    # times that for kernels that also accumulate in float16.
    _assert_confident_detections_kept(
        _rows(reference, calibration_records), _rows(half, calibration_records), 0.05
    )


def test_calibration_images_are_the_records_resized_in_order_cyclically():
    colours = [(10, 20, 30), (200, 100, 0), (0, 255, 7)]
    records = [
        DetectionRecord(str(i), lambda c=c: Image.new("RGB", (50, 30), c), 50, 30)
        for i, c in enumerate(colours)
    ]
    reader = CalibrationImages(records, (16, 24), batch_size=2)
    assert len(reader) == 2
    first, second = reader.get_next()["images"], reader.get_next()["images"]
    assert reader.get_next() is None
    assert first.shape == (2, 3, 16, 24) and first.dtype == np.uint8
    got = [tuple(int(v) for v in image[:, 5, 7]) for image in (*first, *second)]
    assert got == [colours[0], colours[1], colours[2], colours[0]]  # the last batch filled from the start
    reader.set_range(1, 2)
    assert tuple(reader.get_next()["images"][0][:, 0, 0]) == colours[2]


def test_split_keeps_the_check_images_apart_and_refuses_what_cannot_be_checked():
    dataset = load_dataset("shapes:10")
    calibration, held_out = split_for_calibration(dataset, 4, 3, "shapes:10")
    assert [r.image_id for r in calibration.records] == [r.image_id for r in dataset.records[:4]]
    assert [r.image_id for r in held_out.records] == [r.image_id for r in dataset.records[4:7]]
    with pytest.raises(ConfigError, match="has 10 usable images .* use at most 9"):
        split_for_calibration(dataset, 10, 3, "shapes:10")
    boxless = DetectionDataset(
        [DetectionRecord(str(i), lambda: Image.new("RGB", (8, 8)), 8, 8) for i in range(3)], []
    )
    with pytest.raises(DataError, match="have no boxes"):
        split_for_calibration(boxless, 1, 5, "empty")


def test_flag_mistakes_are_one_line(bccd_checkpoint, float_onnx, tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "Annotations").mkdir(parents=True)
    (empty / "ImageSets" / "Main").mkdir(parents=True)
    (empty / "ImageSets" / "Main" / "train.txt").write_text("")
    pt, onnx_file = str(bccd_checkpoint), str(float_onnx)
    cases = [
        (pt, ["--int8"], 2, "--int8 needs calibration images"),
        (
            pt,
            ["--int8", "--calibration", "shapes:4", "--format", "torchscript"],
            2,
            "--int8 makes ONNX files",
        ),
        (pt, ["--fp16", "--format", "torchscript"], 2, "--fp16 makes ONNX files"),
        (pt, ["--int8", "--fp16", "--calibration", "shapes:4"], 2, "--int8 and --fp16 make two different"),
        (pt, ["--calibration", "shapes:4"], 2, "--calibration: only used with --int8"),
        (
            pt,
            ["--int8", "--calibration", str(empty), "--calibration-split", "train"],
            1,
            "no usable images in",
        ),
        (onnx_file, [], 2, "is already an ONNX file: add --int8 or --fp16"),
        (onnx_file, ["--fp16", "--thresh", "0.5"], 2, "--thresh: the input size, batch size and decoding"),
    ]
    for source, extra, code, message in cases:
        assert main(["export", source, *extra, "--out", str(tmp_path / "x.onnx")]) == code, extra
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (extra, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
