import contextlib
import io

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multibox.engine.coco_metric import COCOMetric
from multibox.engine.voc_metric import VOCMetric


def _random_case(seed, images=12, classes=3):
    rng = np.random.default_rng(seed)
    labels = np.full((images, 6, 6), -1.0)
    dets = np.full((images, 20, 6), -1.0)
    for i in range(images):
        n = rng.integers(1, 7)
        xy = rng.uniform(0, 0.7, (n, 2))
        wh = rng.uniform(0.05, 0.3, (n, 2))
        labels[i, :n] = np.column_stack([rng.integers(0, classes, n), xy, xy + wh, np.zeros(n)])
        # detections: jittered copies of the ground truth plus random boxes
        m = rng.integers(n, 20)
        src = rng.integers(0, n, m)
        jitter = rng.normal(0, 0.03, (m, 4))
        boxes = np.clip(labels[i, src, 1:5] + jitter, 0, 1)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 0.01)
        cls = np.where(rng.uniform(size=m) < 0.8, labels[i, src, 0], rng.integers(0, classes, m))
        dets[i, :m] = np.column_stack([cls, rng.uniform(0.05, 1, m), boxes])
    sizes = rng.integers(200, 800, (images, 2)).astype(float)
    return dets, labels, sizes


def _direct_pycocotools(dets, labels, sizes):
    """Build the COCO structures independently and run COCOeval."""
    images, anns, results = [], [], []
    for i, (det, gt, (w, h)) in enumerate(zip(dets, labels, sizes, strict=True)):
        images.append({"id": i, "width": w, "height": h})
        for row in gt[gt[:, 0] >= 0]:
            bw, bh = (row[3] - row[1]) * w, (row[4] - row[2]) * h
            anns.append(
                {
                    "id": len(anns) + 10,
                    "image_id": i,
                    "category_id": int(row[0]) + 5,
                    "bbox": [row[1] * w, row[2] * h, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
        for row in det[det[:, 0] >= 0]:
            results.append(
                {
                    "image_id": i,
                    "category_id": int(row[0]) + 5,
                    "score": row[1],
                    "bbox": [row[2] * w, row[3] * h, (row[4] - row[2]) * w, (row[5] - row[3]) * h],
                }
            )
    coco = COCO()
    coco.dataset = {"images": images, "annotations": anns, "categories": [{"id": c + 5} for c in range(3)]}
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
        evaluator = COCOeval(coco, coco.loadRes(results), "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator.stats


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_pycocotools_used_directly(seed):
    dets, labels, sizes = _random_case(seed)
    metric = COCOMetric(["a", "b", "c"])
    metric.update(dets[:5], labels[:5], sizes[:5])
    metric.update(dets[5:], labels[5:], sizes[5:])
    stats = metric.compute()
    np.testing.assert_allclose(list(stats.values()), _direct_pycocotools(dets, labels, sizes), atol=1e-12)


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_voc_area_ap_agrees_with_coco_ap50(seed):
    # Same matching at IoU 0.5; they differ only by interpolation (area vs 101 points) and COCO's >= vs >.
    dets, labels, sizes = _random_case(seed, images=40)
    coco = COCOMetric(["a", "b", "c"])
    coco.update(dets, labels, sizes)
    voc = VOCMetric(["a", "b", "c"], use_07_metric=False)
    voc.update(dets, labels)
    assert voc.compute()["mAP"] == pytest.approx(coco.compute()["AP50"], abs=0.02)


def test_no_detections_gives_zero():
    _, labels, sizes = _random_case(5, images=2)
    metric = COCOMetric(["a", "b", "c"])
    metric.update(np.full((2, 1, 6), -1.0), labels, sizes)
    assert metric.compute()["AP"] == 0.0
