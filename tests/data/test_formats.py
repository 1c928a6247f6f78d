import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multibox.cli import main
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
from multibox.errors import DataError

# Counts published in each dataset's SOURCE.md.
BCCD_SPLITS = {"train": 205, "val": 87, "test": 72, "trainval": 292}
BCCD_CLASSES = {"Platelets": 361, "RBC": 4155, "WBC": 372}
CARDS_CLASSES = {"ace": 118, "jack": 113, "king": 118, "nine": 115, "queen": 106, "ten": 100}
BCCD_SUBSET_SPLITS = {"train": (51, 687), "test": (24, 301)}  # images, boxes
BCCD_SUBSET_CLASSES = {
    "train": {"Platelets": 58, "RBC": 575, "WBC": 54},
    "test": {"Platelets": 17, "RBC": 262, "WBC": 22},
}
MAKE_SUBSET = Path(__file__).resolve().parents[1] / "fixtures" / "make_bccd_subset.py"


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


def test_bccd_subset_loads_exactly(bccd_subset):
    dataset = read_voc(bccd_subset)
    assert (len(dataset), dataset.num_objects) == (75, 988)
    assert dataset.class_names == ["Platelets", "RBC", "WBC"]
    for split, (size, boxes) in BCCD_SUBSET_SPLITS.items():
        part = read_voc(bccd_subset, split)
        assert (len(part), part.num_objects) == (size, boxes)
        assert _class_counts(part) == BCCD_SUBSET_CLASSES[split]
    first = next(r for r in dataset.records if r.image_id == "BloodImage_00004")
    assert (first.width, first.height, first.num_objects) == (640, 480, 13)
    assert first.boxes[0].tolist() == [109, 134, 324, 321] and dataset.class_names[first.labels[0]] == "WBC"
    assert first.image.name == "BloodImage_00004.jpg" and first.image.is_file()


def test_bccd_subset_is_regenerated_byte_for_byte_from_the_full_set(datasets_dir, bccd_subset, tmp_path):
    done = subprocess.run(
        [sys.executable, str(MAKE_SUBSET), str(datasets_dir / "bccd"), str(tmp_path / "subset")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "train 51, test 24 images" in done.stdout
    made = {p.relative_to(tmp_path / "subset") for p in (tmp_path / "subset").rglob("*") if p.is_file()}
    kept = {p.relative_to(bccd_subset) for p in bccd_subset.rglob("*") if p.is_file()}
    assert kept - made == {Path("SOURCE.md"), Path("LICENSE")} and made <= kept
    assert len(made) == 2 * 75 + 3  # images, annotations, labels.txt and the two split files
    for relative in sorted(made):
        kept_bytes = (bccd_subset / relative).read_bytes()
        assert kept_bytes == (tmp_path / "subset" / relative).read_bytes(), relative
        if relative.parts[0] in ("JPEGImages", "Annotations") or relative.name == "labels.txt":
            assert kept_bytes == (datasets_dir / "bccd" / relative).read_bytes(), relative
    license_text = (datasets_dir / "bccd" / "original" / "LICENSE").read_bytes()
    assert (bccd_subset / "LICENSE").read_bytes() == license_text
    for split in ("train", "test"):
        full = (datasets_dir / "bccd" / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        ours = (bccd_subset / "ImageSets" / "Main" / f"{split}.txt").read_text().split()
        assert ours == [i for i in full if i in set(ours)]  # a subset of that split, in its order


def test_cards_loads_exactly(datasets_dir):
    dataset = load_dataset(datasets_dir / "cards")
    assert (len(dataset), dataset.num_objects) == (363, 670)
    assert _class_counts(dataset) == CARDS_CLASSES
    assert len(load_dataset(datasets_dir / "cards", "train")) == 296
    assert len(load_dataset(datasets_dir / "cards", "test")) == 67


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo", "lst"])
@pytest.mark.parametrize("real_set", ["bccd_subset", "cards"])
def test_round_trip_through_every_format(request, real_set, tmp_path, fmt):
    if real_set == "bccd_subset":
        root = request.getfixturevalue("bccd_subset")
    else:
        root = request.getfixturevalue("datasets_dir") / real_set  # the full set
    original = read_voc(root, "test")
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


def test_voc_unknown_class_is_reported_not_hidden(bccd_subset):
    dataset = read_voc(bccd_subset, "test", class_names=["RBC", "WBC"])
    assert dataset.num_objects == 262 + 22
    assert Counter(p.kind for p in dataset.problems) == {"unknown class": 17}


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


def _coco(path, categories, images=None, annotations=()):
    images = images or [{"id": 1, "file_name": "i.jpg", "width": 40, "height": 30}]
    path.write_text(
        json.dumps({"images": images, "annotations": list(annotations), "categories": categories})
    )
    return path


def test_coco_categories_of_one_name_are_an_error_not_merged(tmp_path, capsys):
    _image(tmp_path / "i.jpg")
    boxes = [
        {"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 5, 5]},
        {"id": 2, "image_id": 1, "category_id": 2, "bbox": [0, 0, 6, 6]},
    ]
    path = _coco(
        tmp_path / "dup.json", [{"id": 1, "name": "cat"}, {"id": 2, "name": "cat"}], annotations=boxes
    )
    with pytest.raises(DataError) as raised:
        read_coco(path, tmp_path)
    assert str(raised.value) == (
        f"{path}: categories 1 and 2 are both named 'cat'; rename one, or merge them into one category (and "
        "its annotations) in the file"
    )
    assert main(["data", "check", str(path)]) == 1
    captured = capsys.readouterr()
    assert captured.err == f"multibox: error: {raised.value}\n" and "Traceback" not in captured.out


def test_coco_structure_errors_name_the_file(tmp_path):
    two_ids = _coco(tmp_path / "ids.json", [{"id": 3, "name": "cat"}, {"id": 3, "name": "dog"}])
    with pytest.raises(DataError, match=r"ids.json: category id 3 is used twice \('cat' and 'dog'\)"):
        read_coco(two_ids)
    images = [{"id": 1, "file_name": "a.jpg"}, {"id": 1, "file_name": "b.jpg"}]
    two_images = _coco(tmp_path / "im.json", [{"id": 3, "name": "cat"}], images)
    with pytest.raises(DataError, match=r"im.json: image id 1 is used twice \(a.jpg and b.jpg\)"):
        read_coco(two_images)
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(DataError, match="bad.json is not valid JSON"):
        read_coco(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(DataError, match="list.json is not a COCO detection file: no 'images' list"):
        read_coco(tmp_path / "list.json")


def test_class_name_file_listing_a_name_twice_is_an_error(tmp_path):
    (tmp_path / "names.txt").write_text("cat\ndog\ncat # again\n")
    with pytest.raises(DataError, match=r"names.txt: class 'cat' listed twice"):
        read_voc(_voc_folder(tmp_path / "v"), class_names=tmp_path / "names.txt")


def _voc_folder(root):
    (root / "Annotations").mkdir(parents=True)
    return root


def _write_in(fmt, root):
    """Two images by hand in ``fmt``: A (100x50) holds a cat, a dog and a bird, B (100x50) two birds."""
    root.mkdir()
    objects = {
        "A": [("cat", 10, 10, 30, 30), ("dog", 40, 10, 60, 30), ("bird", 0, 0, 50, 50)],
        "B": [("bird", 0, 0, 50, 50)] * 2,
    }
    number = {"cat": 0, "dog": 1, "bird": 2}
    if fmt == "voc":
        (root / "JPEGImages").mkdir()
        (root / "Annotations").mkdir()
        for name, rows in objects.items():
            _image(root / "JPEGImages" / f"{name}.jpg", (100, 50))
            xml = "".join(
                f"<object><name>{c}</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{x}</xmax><ymax>{y}</ymax>"
                "</bndbox></object>"
                for c, a, b, x, y in rows
            )
            (root / "Annotations" / f"{name}.xml").write_text(
                f"<annotation><size><width>100</width><height>50</height></size>{xml}</annotation>"
            )
        (root / "labels.txt").write_text("cat\ndog\n")
        return read_voc(root)
    if fmt == "coco":
        images, annotations = [], []
        for index, (name, rows) in enumerate(objects.items(), start=1):
            _image(root / f"{name}.jpg", (100, 50))
            images.append({"id": index, "file_name": f"{name}.jpg", "width": 100, "height": 50})
            for c, a, b, x, y in rows:
                bbox = [a, b, x - a, y - b]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index,
                        "category_id": number[c] + 1,
                        "bbox": bbox,
                    }
                )
        categories = [{"id": i + 1, "name": c} for c, i in number.items()]
        _coco(root / "instances_all.json", categories, images, annotations)
        return read_coco(root / "instances_all.json", root, class_names=["cat", "dog"])
    if fmt == "yolo":
        (root / "images").mkdir()
        (root / "labels").mkdir()
        for name, rows in objects.items():
            _image(root / "images" / f"{name}.jpg", (100, 50))
            lines = [
                f"{number[c]} {(a + x) / 200} {(b + y) / 100} {(x - a) / 100} {(y - b) / 50}\n"
                for c, a, b, x, y in rows
            ]
            (root / "labels" / f"{name}.txt").write_text("".join(lines))
        (root / "classes.txt").write_text("cat\ndog\n")
        return read_yolo(root / "images")
    lines = []
    for index, (name, rows) in enumerate(objects.items()):
        _image(root / f"{name}.jpg", (100, 50))
        numbers = " ".join(f"{number[c]} {a / 100} {b / 50} {x / 100} {y / 50} 0" for c, a, b, x, y in rows)
        lines.append(f"{index}\t2\t6\t{numbers}\t{name}.jpg\n")
    (root / "labels.txt").write_text("cat\ndog\n")
    (root / "all.lst").write_text("".join(lines))
    return read_lst(root / "all.lst")


@pytest.mark.parametrize("fmt", ["voc", "coco", "yolo", "lst"])
def test_every_reader_reports_boxes_of_classes_left_out_alike(tmp_path, fmt):
    dataset = _write_in(fmt, tmp_path / fmt)
    assert dataset.class_names == ["cat", "dog"]
    assert [(r.image_id, r.labels.tolist()) for r in dataset.records] == [("A", [0, 1]), ("B", [])]
    np.testing.assert_allclose(dataset[0].boxes, [[10, 10, 30, 30], [40, 10, 60, 30]], atol=1e-3)
    bird = "bird" if fmt in ("voc", "coco") else "#2"  # YOLO and .lst know classes by number only
    assert [(p.kind, p.subject) for p in dataset.problems] == [("unknown class", bird)] * 3
    assert all("not in the class list" in p.detail for p in dataset.problems)
    assert {p.image_id for p in dataset.problems} == ({"1", "2"} if fmt == "coco" else {"A", "B"})
