"""``use_difficult`` (the original evaluate.py's ``--use-difficult``): difficult ground truth scored as ordinary
ground truth, against APs computed by hand."""

import numpy as np
import pytest
import torch

from multibox.cli import build_parser
from multibox.engine.evaluate import evaluate
from multibox.engine.voc_metric import VOCMetric

# One image, class 0: an ordinary object A and a difficult object B, far apart.
LABELS = np.array([[[0, 0, 0, 10, 10, 0], [0, 50, 50, 60, 60, 1]]], np.float32)  # (1, 2, 6)
ON_A = [0, 0.8, 0, 0, 10, 10]
ON_B = [0, 0.9, 50, 50, 60, 60]
ELSEWHERE = [0, 0.85, 80, 80, 90, 90]


def _ap(detections: list, use_difficult: bool) -> tuple[float, float]:
    """(VOC07 11-point AP, VOC area AP) of class 0."""
    found = []
    for use_07 in (True, False):
        metric = VOCMetric(["cell"], use_07_metric=use_07, use_difficult=use_difficult)
        metric.update(np.array([detections], np.float32), LABELS)
        found.append(metric.compute()["ap"]["cell"])
    return tuple(found)


def test_an_undetected_difficult_object_costs_recall_only_when_counted():
    # ignored: 1 positive, found -> AP 1. Counted: 2 positives, recall 0.5 at precision 1:
    # 11-point: t = 0 .. 0.5 have precision 1, t = 0.6 .. 1 none -> 6 / 11; area: 0.5 * 1.
    assert _ap([ON_A], use_difficult=False) == pytest.approx((1.0, 1.0))
    assert _ap([ON_A], use_difficult=True) == pytest.approx((6 / 11, 0.5))


def test_a_detected_difficult_object_is_ignored_or_a_true_positive():
    detections = [ON_B, ELSEWHERE, ON_A]  # scores 0.9, 0.85, 0.8
    # ignored: B's detection dropped; FP then TP of 1 positive: precision 0.5 at recall 1 -> 0.5 and 0.5.
    assert _ap(detections, use_difficult=False) == pytest.approx((0.5, 0.5))
    # counted: TP, FP, TP of 2 positives: recall .5 .5 1, precision 1 .5 2/3.
    # 11-point: t <= 0.5 -> 1 (6 points), t > 0.5 -> 2/3 (5 points); area: 0.5 * 1 + 0.5 * 2/3.
    assert _ap(detections, use_difficult=True) == pytest.approx(((6 + 5 * 2 / 3) / 11, 0.5 + 0.5 * 2 / 3))


class _FixedDetector:
    """Anything with ``detect()``: the same detections for every image."""

    def __init__(self, rows):
        self.rows = torch.tensor([rows], dtype=torch.float32)

    def detect(self, images):
        return self.rows.expand(len(images), -1, -1)


@pytest.mark.parametrize("use_difficult, area, positives", [(False, 0.5, 1), (True, 0.5 + 0.5 * 2 / 3, 2)])
def test_evaluate_threads_the_option_to_the_metrics_and_the_diagnostics(use_difficult, area, positives):
    loader = [(torch.zeros(1, 3, 8, 8), torch.from_numpy(LABELS))]
    detector = _FixedDetector([ON_B, ELSEWHERE, ON_A])
    result = evaluate(detector, loader, ["cell"], diagnostics=True, use_difficult=use_difficult)
    assert result["ap_area"]["cell"] == pytest.approx(area)
    cell = result["diagnostics"]["classes"]["cell"]
    assert cell["ap_area"] == pytest.approx(area) and cell["ground_truths"] == positives
    assert ("difficult counted" in result["table"]) is use_difficult


def test_the_evaluate_command_takes_the_flag_and_several_datasets():
    parser = build_parser()
    args = parser.parse_args(["evaluate", "--checkpoint", "c.pt", "--data", "a", "b", "--use-difficult"])
    assert args.use_difficult is True and args.data == ["a", "b"]
    assert parser.parse_args(["evaluate", "--checkpoint", "c.pt", "--data", "a"]).use_difficult is False
