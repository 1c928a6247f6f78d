"""Dataset -> anchor coverage and fit (multibox/engine/anchor_report.py) and ``multibox data anchors``
(multibox/cli_data_anchors.py)."""

from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
import yaml

from multibox.cli_data_anchors import add_anchors_command, run_anchors
from multibox.data.formats import load_dataset
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import clean_for_training
from multibox.engine.anchor_report import anchor_report, dataset_boxes, fit_for_dataset
from multibox.errors import ConfigError, DataError
from multibox.model import build_ssd
from multibox.ops.boxes import box_iou


def _record(name: str, boxes, labels, width=200, height=100, crowd=None) -> DetectionRecord:
    return DetectionRecord(name, lambda: None, width, height, boxes, labels, crowd=crowd)


def test_dataset_boxes_applies_the_training_rule():
    records = [
        _record("a", [[0, 0, 100, 50], [10, 10, 10, 30]], [0, 1]),  # the second has no width: dropped
        _record(
            "b", [[-20, 0, 50, 50], [0, 0, 5, 5]], [1, 0], 400, 300, crowd=[False, True]
        ),  # clipped, crowd
        _record("c", np.zeros((0, 4)), []),
    ]
    arrays = dataset_boxes(DetectionDataset(records, ["x", "y"]))
    assert len(arrays) == 2
    np.testing.assert_array_equal(arrays.boxes, [[0, 0, 100, 50], [0, 0, 50, 50]])
    np.testing.assert_array_equal(arrays.labels, [0, 1])
    np.testing.assert_array_equal(arrays.image_sizes, [[100, 200], [300, 400]])
    assert arrays.class_names == ["x", "y"]


def test_no_boxes_is_one_line_data_error():
    empty = DetectionDataset([_record("a", np.zeros((0, 4)), [])], ["x"], name="empty")
    with pytest.raises(DataError, match="no usable boxes") as info:
        anchor_report(empty, "tiny", 128)
    assert "\n" not in str(info.value)


def _tall_dataset(n_images: int = 40, seed: int = 0) -> DetectionDataset:
    rng = np.random.default_rng(seed)
    records = []
    for i in range(n_images):  # tall thin boxes (1 : 4) in 256 x 256 images
        w = rng.uniform(0.06, 0.2, 5)
        cx, cy = rng.uniform(0.1, 0.9, 5), rng.uniform(2 * w, 1 - 2 * w)
        boxes = np.stack([cx - w / 2, cy - 2 * w, cx + w / 2, cy + 2 * w], axis=1) * 256
        records.append(_record(f"im{i}", boxes, rng.integers(0, 2, 5), 256, 256))
    return DetectionDataset(records, ["thin", "tall"], name="tall")


def test_fit_for_dataset_gives_network_options_that_build():
    dataset = _tall_dataset()
    options = fit_for_dataset(dataset, "tiny", 128)
    assert set(options) == {"sizes", "ratios"}
    assert all(isinstance(v, float) for layer in options["sizes"] + options["ratios"] for v in layer)
    report = anchor_report(dataset, "tiny", 128, fit=True)
    assert report.fit is not None and report.fit.options == options
    assert report.fit.after.overall.coverage > report.coverage.overall.coverage
    model = build_ssd("tiny", 2, 128, **options)
    with torch.no_grad():
        loc, _ = model(torch.zeros(1, 3, 128, 128))
    assert loc.shape == (1, 4 * len(model.anchors))


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_anchors_command(parser.add_subparsers(dest="data_command"))
    return parser.parse_args(["anchors", *argv])


def _independent_coverage(dataset: DetectionDataset, network: str, data_shape: int):
    """Each box's best IoU, straight from ops.box_iou on the whole matrix, over the boxes training keeps
    (the training rule drops bccd's one box of no width; no crowd regions here)."""
    dataset, _ = clean_for_training(dataset)
    assert not any(r.crowd.any() for r in dataset.records)
    boxes = np.concatenate([r.boxes / [r.width, r.height, r.width, r.height] for r in dataset.records])
    labels = np.concatenate([r.labels for r in dataset.records])
    best = box_iou(torch.tensor(boxes, dtype=torch.float32), build_ssd(network, 1, data_shape).anchors)
    best = best.amax(dim=1).numpy()
    return best, labels


def _row(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if line.startswith(name + " "))
    return re.split(r"\s{2,}", line.strip())


def test_run_anchors_prints_the_numbers(capsys):
    dataset = load_dataset("shapes:64", None)
    best, labels = _independent_coverage(dataset, "tiny", 128)
    assert run_anchors(_parse("shapes:64", "--network", "tiny", "--data-shape", "128")) == 0
    out = capsys.readouterr().out
    assert _row(out, "all") == [
        "all",
        str(len(best)),
        f"{100 * (best >= 0.5).mean():.1f} %",
        f"{best.mean():.3f}",
    ]
    for k, name in enumerate(dataset.class_names):
        chosen = best[labels == k]
        expected = [f"class {name}", str(len(chosen)), f"{100 * (chosen >= 0.5).mean():.1f} %"]
        assert _row(out, f"class {name}")[:3] == expected
    assert "small (< 6.4 px)" in out and "large (>= 19.2 px)" in out
    assert "fitted anchors" not in out


def test_run_anchors_fits_and_writes_yaml(bccd_subset, tmp_path, capsys):
    target = tmp_path / "anchors.yaml"
    args = _parse(str(bccd_subset), "--split", "train", "--network", "tiny", "--data-shape", "160")
    args.write = str(target)
    assert run_anchors(args) == 0
    out = capsys.readouterr().out
    dataset = load_dataset(bccd_subset, "train")
    best, _ = _independent_coverage(dataset, "tiny", 160)
    assert _row(out, "all")[1:3] == [str(len(best)), f"{100 * (best >= 0.5).mean():.1f} %"]
    assert "fitted anchors" in out and "after the fit:" in out
    written = yaml.safe_load(target.read_text())
    assert set(written) == {"network_options"}
    options = written["network_options"]
    assert options == fit_for_dataset(dataset, "tiny", 160)
    if options:  # the fit raised the coverage: the file builds the network
        build_ssd("tiny", 3, 160, **options)
        assert "train with anchors=auto, or these network_options" in out


def test_run_anchors_errors_are_one_line(tmp_path):
    with pytest.raises(ConfigError, match="unknown network") as info:
        run_anchors(_parse("shapes:8", "--network", "no_such_net"))
    assert "\n" not in str(info.value)
    args = _parse("shapes:8", "--network", "tiny", "--data-shape", "128", "--write", str(tmp_path))
    with pytest.raises(ConfigError, match="is a folder"):
        run_anchors(args)
