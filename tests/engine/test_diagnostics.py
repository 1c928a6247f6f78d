"""DetectionDiagnostics: hand-computed curves, F1 and confusion matrix; AP equal to VOCMetric's; the files."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from multibox.engine.diagnostics import (
    DEFAULT_THRESHOLD,
    DetectionDiagnostics,
    best_thresholds,
    overall_threshold,
    write_diagnostics,
)
from multibox.engine.evaluate import evaluate
from multibox.engine.voc_metric import VOCMetric

PAD = [-1.0] * 6


def _pad(rows, size):
    return np.array([list(r) for r in rows] + [PAD] * (size - len(rows)), np.float32)


def _one_class_case():
    """3 ground truths; detections .9 TP (G1), .8 duplicate on G1 (FP), .7 TP (G2), .6 IoU exactly 0.5 with G3
    (FP: VOC's match is strict). G3 is never found."""
    g1, g2, g3 = [0, 0, 0.25, 0.25], [0.5, 0, 0.75, 0.25], [0, 0.5, 1, 1]
    labels = _pad([[0, *g1, 0], [0, *g2, 0], [0, *g3, 0]], 4)[None]
    dets = _pad([[0, 0.8, *g1], [0, 0.6, 0, 0.5, 1, 0.75], [0, 0.9, *g1], [0, 0.7, 0.5, 0, 0.75, 0.24]], 6)[
        None
    ]
    return dets, labels


def test_one_class_hand_computed_curve_f1_and_ap():
    dets, labels = _one_class_case()
    diag = DetectionDiagnostics(["a"])
    diag.update(torch.from_numpy(dets), torch.from_numpy(labels))
    result = diag.compute()
    a = result["classes"]["a"]
    # score order .9 TP, .8 FP, .7 TP, .6 FP; 3 positives
    np.testing.assert_allclose(a["scores"], [0.9, 0.8, 0.7, 0.6], rtol=1e-6)
    np.testing.assert_allclose(a["precision"], [1, 1 / 2, 2 / 3, 2 / 4])
    np.testing.assert_allclose(a["recall"], [1 / 3, 1 / 3, 2 / 3, 2 / 3])
    # F1 = 2PR / (P + R): .9 -> 1/2, .8 -> 2/5, .7 -> 2/3 (best), .6 -> 4/7
    assert a["best_threshold"] == pytest.approx(0.7)
    assert a["best_precision"] == pytest.approx(2 / 3) and a["best_recall"] == pytest.approx(2 / 3)
    assert a["best_f1"] == pytest.approx(2 / 3)
    # VOC07: recall >= 0, .1, .2, .3 -> max precision 1; .4, .5, .6 -> 2/3; .7 ... 1 -> 0
    assert a["ap_voc07"] == pytest.approx((4 * 1 + 3 * 2 / 3) / 11)
    # area: envelope 1 on [0, 1/3], 2/3 on [1/3, 2/3]
    assert a["ap_area"] == pytest.approx(1 / 3 + 2 / 9)
    assert (a["ground_truths"], a["detections"]) == (3, 4)
    assert result["overall"]["best_threshold"] == pytest.approx(0.7)
    assert best_thresholds(result) == {"a": pytest.approx(0.7)} and overall_threshold(
        result
    ) == pytest.approx(0.7)
    # confusion at the F1-best .7: .9 and .7 on the diagonal, the duplicate .8 on background, G3 missed
    np.testing.assert_array_equal(result["confusion"]["matrix"], [[2, 1], [1, 0]])
    assert result["confusion"]["labels"] == ["a", "background"]
    # at .6 the IoU-0.5 detection takes G3 (the matrix matches at IoU >= 0.5, the curve at IoU > 0.5)
    np.testing.assert_array_equal(diag.compute(score_threshold=0.6)["confusion"]["matrix"], [[3, 0], [1, 0]])


P, Q, R, S, T = (
    [0, 0, 0.2, 0.2],
    [0.5, 0.5, 0.7, 0.7],
    [0.8, 0.8, 1, 1],
    [0, 0.5, 0.2, 0.7],
    [0.5, 0, 0.7, 0.2],
)
EMPTY = [0.3, 0, 0.45, 0.15]


def _two_class_case():
    """Classes A (0) and B (1). Ground truth: A at P, B at Q, A at R, A at S, B at T (difficult)."""
    labels = _pad([[0, *P, 0], [1, *Q, 0], [0, *R, 0], [0, *S, 0], [1, *T, 1]], 6)[None]
    dets = _pad(
        [
            [0, 0.95, *S],  # A on A: diagonal
            [1, 0.9, *P],  # B on A: class confusion, row A column B
            [1, 0.8, *Q],  # B on B: diagonal
            [0, 0.7, *EMPTY],  # A on nothing: background row
            [1, 0.85, *T],  # B on the difficult B: not counted
            [0, 0.3, *R],  # A on A at R, below 0.5
        ],
        8,
    )[None]
    return dets, labels


def test_two_class_confusion_matrix_by_hand():
    dets, labels = _two_class_case()
    diag = DetectionDiagnostics(["A", "B"])
    diag.update(dets, labels)
    matrix = diag.compute(score_threshold=0.5)["confusion"]["matrix"]
    #                    pred A  pred B  missed
    expected = np.array([[1, 1, 1], [0, 1, 0], [1, 0, 0]])  # true A / true B / background
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.dtype == np.int64 and matrix[2, 2] == 0
    low = diag.compute(score_threshold=0.2)["confusion"]["matrix"]  # A .3 now finds R
    np.testing.assert_array_equal(low, [[2, 1, 0], [0, 1, 0], [1, 0, 0]])
    per_class = diag.compute(score_threshold={"A": 0.75, "B": 0.5})["confusion"]  # A .7 (FP) now left out
    np.testing.assert_array_equal(per_class["matrix"], [[1, 1, 1], [0, 1, 0], [0, 0, 0]])
    assert per_class["thresholds"] == [0.75, 0.5]
    with pytest.raises(ValueError, match="unknown classes"):
        diag.compute(score_threshold={"C": 0.5})


def test_confusion_takes_the_highest_iou_and_a_duplicate_is_background():
    labels = _pad([[0, 0, 0, 0.4, 0.4, 0], [1, 0, 0, 0.4, 0.5, 0]], 2)[None]  # A and B overlapping
    dets = _pad(
        [
            [1, 0.9, 0, 0, 0.4, 0.48],  # B: IoU .96 with B, .83 with A -> B
            [0, 0.8, 0, 0, 0.4, 0.4],  # A: IoU 1 with A
            [0, 0.7, 0, 0, 0.4, 0.41],  # A again: A is taken, B is taken -> background
        ],
        3,
    )[None]
    diag = DetectionDiagnostics(["A", "B"])
    diag.update(dets, labels)
    matrix = diag.compute(score_threshold=0.0)["confusion"]["matrix"]
    np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0], [1, 0, 0]])


def test_no_true_positive_falls_back():
    labels = _pad([[0, *P, 0]], 1)[None]
    dets = _pad([[0, 0.9, *R]], 1)[None]
    diag = DetectionDiagnostics(["A", "B"])
    diag.update(dets, labels)
    result = diag.compute()
    assert result["classes"]["A"]["best_threshold"] is None and result["classes"]["A"]["ap_voc07"] == 0.0
    assert result["classes"]["B"]["ap_voc07"] is None and result["classes"]["B"]["best_f1"] == 0.0
    assert overall_threshold(result) == DEFAULT_THRESHOLD
    assert best_thresholds(result) == {"A": DEFAULT_THRESHOLD, "B": DEFAULT_THRESHOLD}
    np.testing.assert_array_equal(result["confusion"]["matrix"], [[0, 0, 1], [0, 0, 0], [1, 0, 0]])


@st.composite
def _batches(draw):
    """Random images of 3 classes: boxes on a coarse grid (many overlaps), scores from few values (ties)."""
    images = draw(st.integers(1, 4))
    k, m = draw(st.integers(0, 8)), draw(st.integers(0, 6))
    grid = st.sampled_from([0.0, 0.1, 0.2, 0.3])
    size = st.sampled_from([0.2, 0.3, 0.5])

    def rows(n, detections):
        out = []
        for _ in range(n):
            x, y, w, h = draw(grid), draw(grid), draw(size), draw(size)
            cls = draw(st.integers(-1 if detections else 0, 2))
            extra = draw(st.sampled_from([0.2, 0.5, 0.5, 0.9])) if detections else 0.0
            tail = draw(st.sampled_from([0.0, 0.0, 0.0, 1.0]))  # difficult
            out.append([cls, extra, x, y, x + w, y + h] if detections else [cls, x, y, x + w, y + h, tail])
        return out

    dets = np.stack([_pad(rows(k, True), k + 1) for _ in range(images)])
    labels = np.stack([_pad(rows(m, False), m + 1) for _ in range(images)])
    return dets, labels


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(_batches(), min_size=1, max_size=3))
def test_ap_equals_voc_metric(batches):
    names = ["a", "b", "c"]
    diag = DetectionDiagnostics(names)
    voc07, area = VOCMetric(names, use_07_metric=True), VOCMetric(names, use_07_metric=False)
    for dets, labels in batches:
        for metric in (diag, voc07, area):
            metric.update(dets, labels)
    result, r07, rarea = diag.compute(), voc07.compute(), area.compute()
    for name in names:
        assert result["classes"][name]["ap_voc07"] == r07["ap"][name]
        assert result["classes"][name]["ap_area"] == rarea["ap"][name]
    assert result["mAP_voc07"] == r07["mAP"] and result["mAP_area"] == rarea["mAP"]
    # every non-difficult ground truth is counted once in its row, found or missed
    matrix = result["confusion"]["matrix"]
    for c, name in enumerate(names):
        assert matrix[c].sum() == result["classes"][name]["ground_truths"]


def test_write_diagnostics_files_match_compute(tmp_path):
    dets, labels = _two_class_case()
    diag = DetectionDiagnostics(["A", "B"])
    diag.update(dets, labels)
    result = diag.compute()
    paths = write_diagnostics(result, ["A", "B"], tmp_path / "out")
    names = ["pr_curves.png", "confusion_matrix.png", "per_class.csv", "confusion_matrix.csv"]
    assert [p.name for p in paths] == names and all(p.is_file() for p in paths)
    for png in paths[:2]:
        with Image.open(png) as image:
            image.verify()
        with Image.open(png) as image:
            assert image.format == "PNG" and 200 <= image.width <= 4000 and 150 <= image.height <= 4000
            assert len(image.convert("L").getcolors(1 << 16)) > 2  # something was drawn
    with open(paths[2], newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["class"] for r in rows] == ["A", "B"]
    keys = {"ap_voc07": "ap_voc07", "ap_area": "ap_area", "f1_best_threshold": "best_threshold"}
    keys.update(precision="best_precision", recall="best_recall", f1="best_f1")
    for row in rows:
        c = result["classes"][row["class"]]
        assert int(row["ground_truths"]) == c["ground_truths"] and int(row["detections"]) == c["detections"]
        for column, key in keys.items():
            assert (None if row[column] == "" else float(row[column])) == c[key]
    with open(paths[3], newline="") as f:
        table = list(csv.reader(f))
    assert table[0][1:] == ["A", "B", "background"] and [r[0] for r in table[1:]] == table[0][1:]
    np.testing.assert_array_equal([[int(v) for v in r[1:]] for r in table[1:]], result["confusion"]["matrix"])


def test_write_diagnostics_refuses_other_class_names(tmp_path):
    diag = DetectionDiagnostics(["A", "B"])
    with pytest.raises(ValueError, match="class names"):
        write_diagnostics(diag.compute(), ["A"], tmp_path)


class _FixedDetector:
    """detect() gives the prepared detections batch by batch."""

    def __init__(self, outputs):
        self.outputs = list(outputs)

    def detect(self, images, **kwargs):
        return torch.from_numpy(self.outputs.pop(0))


def test_evaluate_with_diagnostics():
    one_dets, one_labels = _one_class_case()
    dets, labels = _two_class_case()
    one_dets = np.concatenate([one_dets, np.full((1, 2, 6), -1, np.float32)], axis=1)  # (1, 8, 6)
    loader = [
        (torch.zeros(1, 3, 8, 8), torch.from_numpy(labels)),
        (torch.zeros(1, 3, 8, 8), torch.from_numpy(one_labels)),
    ]
    plain = evaluate(_FixedDetector([dets, one_dets]), loader, ["A", "B"])
    assert "diagnostics" not in plain
    result = evaluate(_FixedDetector([dets, one_dets]), loader, ["A", "B"], diagnostics=True)
    diagnostics = result["diagnostics"]
    assert diagnostics["images"] == 2 and diagnostics["class_names"] == ["A", "B"]
    for name in ("A", "B"):
        assert diagnostics["classes"][name]["ap_voc07"] == result["ap_voc07"][name] == plain["ap_voc07"][name]
        assert diagnostics["classes"][name]["ap_area"] == result["ap_area"][name]
    assert diagnostics["mAP_voc07"] == result["mAP_voc07"]
    assert diagnostics["confusion"]["matrix"].shape == (3, 3)
