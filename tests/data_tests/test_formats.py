import json
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from multibox.data.formats import (
    detect_format,
    load_dataset,
    read_coco,
    read_lst,
    read_voc,
    read_yolo,
    save_dataset,
    write_lst,
)
from multibox.data.records import DetectionDataset, DetectionRecord

# Counts published in each dataset's SOURCE.md.
BCCD_SPLITS = {"train": 205, "val": 87, "test": 72, "trainval": 292}
BCCD_CLASSES = {"Platelets": 361, "RBC": 4155, "WBC": 372}
CARDS_CLASSES = {"ace": 118, "jack": 113, "king": 118, "nine": 115, "queen": 106, "ten": 100}


def _class_counts(dataset):
    return Counter(dataset.class_names[int(c)] for r in dataset.records for c in r.labels)


def test_bccd_loads_exactly(datasets_dir):
    dataset = read_voc(datasets_dir / "bccd")
    assert (len(dataset), dataset.num_objects) == (364, 4888)
    assert dataset.class_names == ["Platelets", "RBC", "WBC"]
    assert _class_counts(dataset) == BCCD_CLASSES
    for split, size in BCCD_SPLITS.items():
        assert len(read_voc(datasets_dir / "bccd", split)) == size
    first = next(r for r in dataset.records if r.image_id == "BloodImage_00000")
    assert (first.width, first.height, first.num_objects) == (640, 480, 20)
    assert first.boxes[0].tolist() == [260, 177, 491, 376] and dataset.class_names[first.labels[0]] == "WBC"
    assert first.image.name == "BloodImage_00000.jpg" and first.image.is_file()


def test_cards_loads_exactly(datasets_dir):
    dataset = load_dataset(datasets_dir / "cards")
    assert (len(dataset), dataset.num_objects) == (363, 670)
    assert _class_counts(dataset) == CARDS_CLASSES
    assert len(load_dataset(datasets_dir / "cards", "train")) == 296
    assert len(load_dataset(datasets_dir / "cards", "test")) == 67


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo", "lst"])
def test_round_trip_through_every_format(datasets_dir, tmp_path, fmt):
    original = read_voc(datasets_dir / "cards", "test")
    written = save_dataset(original, tmp_path / fmt, fmt, split="test")
    source = tmp_path / fmt if fmt == "voc" else written
    back = load_dataset(source, "test" if fmt == "voc" else None, class_names=original.class_names)
    assert [r.image_id for r in back.records] == [r.image_id for r in original.records]
    # .lst stores normalised coordinates with 4 decimals: 0.5e-4 of the image size at most
    tolerance = {"lst": 0.5e-4 * 960 + 1e-3, "yolo": 1e-2}.get(fmt, 0)
    for a, b in zip(back.records, original.records, strict=True):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=tolerance)
        assert a.labels.tolist() == b.labels.tolist()
        assert (a.width, a.height) == (b.width, b.height)


def _image(path, size=(40, 30), mode="RGB"):
    Image.new(mode, size, 128 if mode == "L" else (10, 20, 30)).save(path)
    return path


def test_lst_line_format_and_reading(tmp_path):
    _image(tmp_path / "a.jpg", (200, 100))
    record = DetectionRecord(
        "a", tmp_path / "a.jpg", 200, 100, [[20, 10, 120, 60], [0, 0, 50, 100]], [1, 0], [0, 1]
    )
    path = write_lst(DetectionDataset([record], ["x", "y"]), tmp_path / "train.lst")
    assert path.read_text() == (
        "0\t2\t6\t1.0000\t0.1000\t0.1000\t0.6000\t0.6000\t0.0000"
        "\t0.0000\t0.0000\t0.0000\t0.2500\t1.0000\t1.0000\ta.jpg\n"
    )
    back = read_lst(path, class_names=["x", "y"])
    np.testing.assert_allclose(back[0].boxes, record.boxes, atol=1e-3)
    assert back[0].difficult.tolist() == [False, True]
    # the original's five-column objects (no difficult flag) and space separated objects read too
    (tmp_path / "five.lst").write_text("7\t2\t5\t0 0.1 0.2 0.3 0.4\ta.jpg\n")
    five = read_lst(tmp_path / "five.lst")
    np.testing.assert_allclose(five[0].boxes, [[20, 20, 60, 40]], atol=1e-4)


def test_yolo_hand_computed(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _image(tmp_path / "images" / "p.jpg", (100, 50))
    (tmp_path / "labels" / "p.txt").write_text("1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    dataset = read_yolo(tmp_path / "images")
    assert dataset.class_names == ["cat", "dog"]
    np.testing.assert_allclose(dataset[0].boxes, [[40, 15, 60, 35], [0, 0, 20, 10]], atol=1e-4)
    assert dataset[0].labels.tolist() == [1, 0]
    assert detect_format(tmp_path) == "yolo" and len(load_dataset(tmp_path)) == 1


def test_coco_boxes_crowd_and_unknown_categories(tmp_path):
    _image(tmp_path / "i.jpg")
    content = {
        "images": [{"id": 5, "file_name": "i.jpg", "width": 40, "height": 30}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 3, "bbox": [1, 2, 10, 20], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 7, "bbox": [0, 0, 40, 30], "iscrowd": 1},
            {"id": 3, "image_id": 5, "category_id": 9, "bbox": [0, 0, 4, 3], "iscrowd": 0},
        ],
        "categories": [{"id": 7, "name": "crowdy"}, {"id": 3, "name": "thing"}],
    }
    (tmp_path / "instances_x.json").write_text(json.dumps(content))
    dataset = read_coco(tmp_path / "instances_x.json", tmp_path)
    assert dataset.class_names == ["thing", "crowdy"]  # categories in id order
    np.testing.assert_allclose(dataset[0].boxes, [[1, 2, 11, 22], [0, 0, 40, 30]])
    assert dataset[0].crowd.tolist() == [False, True]
    assert [p.kind for p in dataset.problems] == ["unknown class"]


def test_voc_unknown_class_is_reported_not_hidden(datasets_dir):
    dataset = read_voc(datasets_dir / "bccd", "test", class_names=["RBC", "WBC"])
    assert dataset.num_objects == 805 + 71
    assert Counter(p.kind for p in dataset.problems) == {"unknown class": 69}


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="format"):
        detect_format(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        detect_format(tmp_path / "nothing.xyz")
    with pytest.raises(FileNotFoundError, match="Annotations"):
        read_voc(tmp_path)
    (tmp_path / "Annotations").mkdir()
    with pytest.raises(FileNotFoundError, match="no split 'train'"):
        read_voc(tmp_path, "train")
