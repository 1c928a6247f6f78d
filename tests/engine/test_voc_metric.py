import numpy as np
import pytest

from multibox.engine.voc_metric import VOCMetric, average_precision

A, B, C, D = [0, 0, 0.5, 0.5], [0.5, 0.5, 1, 1], [0, 0.5, 0.5, 1], [0.2, 0.2, 0.4, 0.4]
FAR = [0.9, 0.0, 1.0, 0.1]


def _batch(with_empty_image):
    """Hand-made case. Class 0: GT A, B, D (+ C difficult); class 1: one GT, never detected; class 2: no GT."""
    labels = np.full((3, 4, 6), -1.0)
    labels[0, :3] = [[0, *A, 0], [0, *B, 0], [0, *C, 1]]
    labels[1, :2] = [[0, *D, 0], [1, 0.6, 0.6, 0.9, 0.9, 0]]
    dets = np.full((3, 5, 6), -1.0)
    dets[0, :4] = [
        [0, 0.8, *A],
        [0, 0.9, *A],
        [0, 0.7, *C],
        [0, 0.6, *FAR],
    ]  # TP .9, dup .8, ignored .7, FP .6
    dets[1, :2] = [[0, 0.85, *D], [2, 0.5, *A]]  # TP .85; class 2 has no ground truth anywhere
    if with_empty_image:
        dets[2, 0] = [0, 0.95, *A]  # an image without ground truth: its detection is a false positive
    return dets, labels


@pytest.mark.parametrize(
    "with_empty_image, ap07, ap_area",
    [(False, 7 / 11, 2 / 3), (True, (7 * 2 / 3) / 11, 4 / 9)],
)
def test_hand_computed_ap(with_empty_image, ap07, ap_area):
    dets, labels = _batch(with_empty_image)
    for use_07, expected in ((True, ap07), (False, ap_area)):
        metric = VOCMetric(["a", "b", "c"], use_07_metric=use_07)
        metric.update(dets[:2], labels[:2])
        metric.update(dets[2:], labels[2:])
        result = metric.compute()
        assert result["ap"]["a"] == pytest.approx(expected)
        assert result["ap"]["b"] == 0.0 and result["ap"]["c"] is None
        assert result["mAP"] == pytest.approx(expected / 2)  # over classes with ground truth only
        assert result["recall"]["a"] == pytest.approx(2 / 3)
        assert metric.num_images == 3


def test_perfect_detections_score_one():
    labels = np.array([[[0, *A, 0], [1, *B, 0]]])
    dets = np.array([[[1, 0.7, *B], [0, 0.9, *A]]])
    for use_07 in (True, False):
        metric = VOCMetric(["a", "b"], use_07_metric=use_07)
        metric.update(dets, labels)
        assert metric.compute()["mAP"] == pytest.approx(1.0)
    assert "mAP" in metric.table() and "1.0000" in metric.table()


def test_iou_threshold_is_strict():
    labels = np.array([[[0, 0, 0, 1, 1]]])  # five columns: no difficult flag
    dets = np.array([[[0, 0.9, 0, 0, 1, 0.5]]])  # IoU exactly 0.5
    metric = VOCMetric(["a"], iou_threshold=0.5)
    metric.update(dets, labels)
    assert metric.compute()["ap"]["a"] == 0.0
    metric = VOCMetric(["a"], iou_threshold=0.49)
    metric.update(dets, labels)
    assert metric.compute()["ap"]["a"] == pytest.approx(1.0)


def test_average_precision_curves():
    recall, precision = np.array([0.5, 1.0]), np.array([1.0, 0.5])
    assert average_precision(recall, precision, use_07_metric=False) == pytest.approx(0.75)
    assert average_precision(recall, precision, use_07_metric=True) == pytest.approx((6 * 1.0 + 5 * 0.5) / 11)


def test_bad_input_raises():
    metric = VOCMetric(["a"])
    with pytest.raises(ValueError, match="class id"):
        metric.update(np.array([[[3, 0.9, *A]]]), np.array([[[0, *A]]]))
    with pytest.raises(ValueError, match="images"):
        metric.update(np.zeros((2, 1, 6)), np.zeros((1, 1, 6)))
