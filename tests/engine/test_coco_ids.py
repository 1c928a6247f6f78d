"""COCO evaluation under a dataset's own image and category ids, scored by pycocotools on the original file."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from multibox.cli import main
from multibox.data import load_dataset
from multibox.data.formats.coco import write_coco
from multibox.engine.coco_metric import COCOMetric


def _pycocotools_ap(annotation_file, results) -> list[float]:
    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(annotation_file))
        evaluator = COCOeval(truth, truth.loadRes(results), iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return [float(v) for v in evaluator.stats]


def test_metric_uses_the_given_ids_and_its_results_score_the_same_in_pycocotools(tmp_path):
    rng = np.random.default_rng(0)
    sizes = np.array([[640, 480], [500, 375], [320, 320]])
    labels = np.full((3, 4, 6), -1.0)
    detections = np.full((3, 6, 6), -1.0)
    for i in range(3):
        corner = rng.uniform(0, 0.6, (4, 2))
        boxes = np.concatenate([corner, corner + rng.uniform(0.1, 0.35, (4, 2))], 1)
        labels[i, :, 0], labels[i, :, 1:5], labels[i, :, 5] = rng.integers(0, 2, 4), boxes, 0
        detections[i, :4, 0], detections[i, :4, 2:] = labels[i, :, 0], boxes + rng.normal(0, 0.02, (4, 4))
        detections[i, :6, 1] = rng.uniform(0.1, 1.0, 6)
        detections[i, 4:, 0], detections[i, 4:, 2:] = 1, [0.1, 0.1, 0.3, 0.3]
    metric = COCOMetric(["cat", "dog"], category_ids=[18, 3])
    metric.update(detections, labels, sizes, image_ids=[42, 7, 1000])
    ours = metric.compute()
    results = metric.results()
    assert {r["image_id"] for r in results} == {42, 7, 1000} and {r["category_id"] for r in results} == {
        3,
        18,
    }
    # the same ground truth written independently, in COCO's own terms
    annotations = []
    for i, image_id in enumerate([42, 7, 1000]):
        w, h = sizes[i]
        for row in labels[i]:
            x1, y1, x2, y2 = row[1:5] * [w, h, w, h]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": [18, 3][int(row[0])],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": (x2 - x1) * (y2 - y1),
                    "iscrowd": 0,
                }
            )
    truth = {
        "images": [
            {"id": j, "width": int(w), "height": int(h)}
            for j, (w, h) in zip([42, 7, 1000], sizes, strict=True)
        ],
        "annotations": annotations,
        "categories": [{"id": 18, "name": "cat"}, {"id": 3, "name": "dog"}],
    }
    (tmp_path / "truth.json").write_text(json.dumps(truth))
    theirs = _pycocotools_ap(tmp_path / "truth.json", results)
    assert theirs == pytest.approx(list(ours.values()), abs=1e-12)
    assert ours["AP50"] > 0.3


def test_bad_category_ids_are_refused():
    with pytest.raises(ValueError, match="distinct ids"):
        COCOMetric(["a", "b"], category_ids=[1, 1])


def test_evaluate_command_writes_results_under_the_files_own_ids(
    bccd_checkpoint, bccd_subset, tmp_path, capsys
):
    # the bccd subset's test split as a COCO file whose image and category ids are neither 1..N nor in class order
    voc = load_dataset(str(bccd_subset), "test")
    plain = write_coco(voc, tmp_path / "plain.json", image_dir=tmp_path / "images")
    content = json.loads(plain.read_text())
    new_category = {1: 11, 2: 5, 3: 9}  # Platelets, RBC, WBC
    for image in content["images"]:
        image["id"] = 1000 + 7 * image["id"]
    for ann in content["annotations"]:
        ann["image_id"] = 1000 + 7 * ann["image_id"]
        ann["category_id"] = new_category[ann["category_id"]]
    for category in content["categories"]:
        category["id"] = new_category[category["id"]]
    annotation_file = tmp_path / "instances_test.json"
    annotation_file.write_text(json.dumps(content))
    (tmp_path / "test").symlink_to(tmp_path / "images")  # instances_test.json -> images in ./test

    dataset = load_dataset(str(annotation_file))  # classes in category id order: RBC 5, WBC 9, Platelets 11
    assert dataset.class_names == ["RBC", "WBC", "Platelets"] and dataset.category_ids == [5, 9, 11]
    assert dataset.records[0].source_id == 1007
    by_name = load_dataset(str(annotation_file), class_names=["Platelets", "RBC", "WBC"])
    assert by_name.category_ids == [11, 5, 9]

    out = tmp_path / "results.json"
    args = [
        "evaluate",
        "--checkpoint",
        str(bccd_checkpoint),
        "--data",
        str(annotation_file),
        "--coco-results",
        str(out),
        "--out",
        str(tmp_path / "evaluation"),
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    ours = float(printed.split("COCO AP ")[1].split()[0])
    results = json.loads(out.read_text())
    assert {r["image_id"] for r in results} <= {im["id"] for im in content["images"]}
    assert {r["category_id"] for r in results} == {5, 9, 11}
    theirs = _pycocotools_ap(annotation_file, results)[0]
    assert ours > 0.1 and theirs == pytest.approx(ours, abs=5e-5)  # printed with 4 decimals

    # and a COCO file written back keeps those ids
    again = json.loads(write_coco(dataset, tmp_path / "again.json").read_text())
    assert [im["id"] for im in again["images"]] == [im["id"] for im in content["images"]]
    assert sorted(c["id"] for c in again["categories"]) == [5, 9, 11]
