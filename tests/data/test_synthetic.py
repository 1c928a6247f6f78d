import numpy as np
import pytest

from multibox.data.formats import load_dataset, make_shapes


def test_same_seed_same_images_and_boxes():
    a, b = make_shapes(6, seed=3), make_shapes(6, seed=3)
    for ra, rb in zip(a.records, b.records, strict=True):
        assert ra.boxes.tolist() == rb.boxes.tolist() and ra.labels.tolist() == rb.labels.tolist()
        assert np.array_equal(np.asarray(ra.open_image()), np.asarray(rb.open_image()))
    c = make_shapes(6, seed=4)
    assert any(ra.boxes.tolist() != rc.boxes.tolist() for ra, rc in zip(a.records, c.records, strict=True))


def test_layout_respects_the_arguments():
    dataset = make_shapes(40, seed=1, image_size=(120, 200), objects_per_image=(2, 3), size_range=(0.2, 0.3))
    assert dataset.class_names == ["circle", "square", "triangle", "star"]
    counts = [r.num_objects for r in dataset.records]
    assert min(counts) >= 2 and max(counts) <= 3
    boxes = np.concatenate([r.boxes for r in dataset.records])
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= 200).all() and (boxes[:, 3] <= 120).all()
    sides = np.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    assert sides.min() >= 0.2 * 120 - 1 and sides.max() <= 0.3 * 120 + 1
    assert set(np.concatenate([r.labels for r in dataset.records]).tolist()) == {0, 1, 2, 3}


def test_boxes_are_tight_around_the_drawn_shape():
    # The last shape drawn is never occluded: the pixels of its colour fill exactly its box (to a pixel).
    checked = 0
    for record in make_shapes(30, seed=2).records:
        pixels = np.asarray(record.open_image()).astype(int)
        shapes = record.image.args[-1]
        last = shapes[-1]
        mask = np.abs(pixels - np.array(last.colour)).sum(-1) == 0
        if mask.sum() < 50:
            continue
        ys, xs = np.nonzero(mask)
        x1, y1, x2, y2 = record.boxes[-1]
        assert xs.min() == pytest.approx(x1, abs=1.5) and xs.max() + 1 == pytest.approx(x2, abs=1.5)
        assert ys.min() == pytest.approx(y1, abs=1.5) and ys.max() + 1 == pytest.approx(y2, abs=1.5)
        checked += 1
    assert checked >= 20


def test_load_dataset_spec_strings():
    train, val = load_dataset("shapes:5", "train"), load_dataset("shapes:5", "val")
    assert len(train) == 5 and train.name == "shapes-0" and val.name == "shapes-1"
    assert len(load_dataset("shapes:3:9")) == 3 and load_dataset("shapes:3:9").name == "shapes-9"
    with pytest.raises(ValueError, match="unknown shape classes"):
        make_shapes(2, class_names=("hexagon",))


def test_shapes_subset_of_classes():
    dataset = load_dataset("shapes:6", "train", class_names=["circle", "star"])
    assert dataset.class_names == ["circle", "star"]
    assert set(np.concatenate([r.labels for r in dataset.records]).tolist()) <= {0, 1}
