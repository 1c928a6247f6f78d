"""Evaluation with an image that cannot be decoded: excluded, named, and the rest scored as without it."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest

from multibox.data.formats import read_voc
from multibox.data.loader import make_loader
from multibox.data.records import DetectionDataset
from multibox.engine.evaluate import evaluate
from multibox.inference import load_detector
from tests.image_helpers import truncate_jpeg

BAD = 4  # position of the truncated image in the subset


@pytest.fixture(scope="module")
def subset(bccd_subset, tmp_path_factory):
    """12 bccd test images copied, the 5th one's JPEG data cut in half."""
    dataset = read_voc(bccd_subset, "test")
    root = tmp_path_factory.mktemp("bccd_subset")
    records = []
    for i, record in enumerate(dataset.records[:12]):
        path = root / record.image.name
        if i == BAD:
            path.write_bytes(truncate_jpeg(record.image.read_bytes()))
        else:
            shutil.copyfile(record.image, path)
        records.append(replace(record, image=path, source_id=1000 + 7 * i))
    return DetectionDataset(records, dataset.class_names, "subset")


def _evaluate(model, class_names, dataset, batch_size=5):
    loader = make_loader(
        dataset,
        batch_size,
        train=False,
        data_shape=model.data_shape,
        num_workers=0,
        return_indices=True,
    )
    return evaluate(
        model,
        loader,
        class_names,
        image_sizes=[(r.width, r.height) for r in dataset.records],
        coco=True,
        image_ids=dataset.source_ids(),
        category_ids=[11, 5, 9],
    )


@pytest.mark.parametrize("batch_size", [1, 5])
def test_bad_image_is_excluded_named_and_the_rest_scored_as_without_it(
    bccd_checkpoint, subset, capfd, batch_size
):
    model, class_names = load_detector(bccd_checkpoint)
    with_bad = _evaluate(model, class_names, subset, batch_size)
    assert with_bad["excluded"] == [subset.records[BAD].image_id]
    assert with_bad["images"] == 11
    err = capfd.readouterr().err
    assert f"skipped unreadable image {subset.records[BAD].image_id}: image file is truncated" in err

    without = DetectionDataset(subset.records[:BAD] + subset.records[BAD + 1 :], subset.class_names)
    reference = _evaluate(model, class_names, without, batch_size)
    assert reference["excluded"] == [] and reference["images"] == 11
    assert with_bad["mAP_voc07"] > 0.3  # a real score, so a misaligned image would change it
    found, expected = with_bad["coco_results"], reference["coco_results"]
    assert 1000 + 7 * BAD not in {r["image_id"] for r in found}  # nothing filed under the bad image's id
    assert [(r["image_id"], r["category_id"]) for r in found] == [
        (r["image_id"], r["category_id"]) for r in expected
    ]
    keys = ("mAP_voc07", "mAP_area", "ap_voc07", "ap_area", "coco_AP", "coco_AP50", "coco_APs")
    if batch_size == 1:  # the same batches of one image: bit for bit the same evaluation
        assert found == expected
        for key in keys:
            assert with_bad[key] == reference[key], key
    else:  # the batch that lost the bad image holds 4 images, not 5: float rounding of the convolutions
        np.testing.assert_allclose([r["bbox"] for r in found], [r["bbox"] for r in expected], atol=1e-3)
        np.testing.assert_allclose([r["score"] for r in found], [r["score"] for r in expected], atol=1e-5)
        for key in keys:
            if isinstance(reference[key], dict):  # per-class AP
                assert with_bad[key].keys() == reference[key].keys()
                for name, value in reference[key].items():
                    np.testing.assert_allclose(with_bad[key][name], value, atol=1e-6, err_msg=f"{key} {name}")
            else:
                np.testing.assert_allclose(with_bad[key], reference[key], atol=1e-6, err_msg=key)


def test_replacing_the_bad_image_by_the_next_would_have_been_caught(bccd_checkpoint, subset):
    """The old loader's behaviour (next image, bad image's labels) scores differently: the test above can tell."""
    model, class_names = load_detector(bccd_checkpoint)
    records = list(subset.records)
    records[BAD] = replace(records[BAD], image=records[BAD + 1].image)
    substituted = _evaluate(model, class_names, DetectionDataset(records, subset.class_names))
    without = DetectionDataset(subset.records[:BAD] + subset.records[BAD + 1 :], subset.class_names)
    reference = _evaluate(model, class_names, without)
    assert substituted["mAP_area"] != reference["mAP_area"]


def test_plain_batches_that_lost_an_image_refuse_misaligned_coco(bccd_checkpoint, subset):
    model, class_names = load_detector(bccd_checkpoint)
    loader = make_loader(subset, 5, train=False, data_shape=model.data_shape, num_workers=0)
    plain = evaluate(model, loader, class_names)
    assert plain["images"] == 11 and plain["excluded"] is None  # not known which
    with pytest.raises(ValueError, match="return_indices=True"):
        evaluate(
            model, loader, class_names, image_sizes=[(r.width, r.height) for r in subset.records], coco=True
        )
