import json
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from multibox.cli import main
from multibox.data.formats import read_coco, read_lst, read_voc, read_yolo
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import check_dataset, clean_for_training, require_images
from multibox.errors import DataError


def test_bccd_zero_area_boxes_are_reported(datasets_dir):
    report = check_dataset(read_voc(datasets_dir / "bccd"), decode=False)
    assert report.counts() == Counter({"degenerate box": 2})
    assert sorted(p.image_id for p in report.problems) == ["BloodImage_00338", "BloodImage_00343"]
    assert report.fatal
    text = report.format()
    assert (
        "degenerate box: 2" in text and "BloodImage_00338" in text and "[504.0, 337.0, 504.0, 337.0]" in text
    )


def test_bccd_training_rule_drops_exactly_those_boxes(datasets_dir):
    dataset = read_voc(datasets_dir / "bccd")
    cleaned, summary = clean_for_training(dataset, check_dataset(dataset, images=False))
    assert cleaned.num_objects == 4886 and len(cleaned) == 364
    assert summary == (
        "bccd: 364 images, 4886 boxes; dropped 2 bad boxes, clipped 0 boxes to the image, "
        "skipped 0 unreadable images"
    )
    assert dataset.num_objects == 4888  # the input is left untouched


def test_cards_are_clean(datasets_dir):
    report = check_dataset(read_voc(datasets_dir / "cards", "test"))
    assert report.problems == [] and not report.fatal


def _save(path, size=(64, 48), mode="RGB", fmt=None, exif_orientation=None):
    image = Image.new(mode, size, 100 if mode in ("L", "CMYK") else (100, 50, 25))
    kwargs = {}
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs["exif"] = exif
    image.save(path, format=fmt, **kwargs)
    return path


def test_every_kind_of_problem_is_found(tmp_path):
    good = _save(tmp_path / "good.jpg")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(good.read_bytes()[:200])
    png_named_jpg = _save(tmp_path / "png.jpg", fmt="PNG")
    gray = _save(tmp_path / "gray.jpg", mode="L")
    rotated = _save(tmp_path / "rotated.jpg", exif_orientation=6)
    duplicate = shutil.copy(good, tmp_path / "copy.jpg")
    box = [[5, 5, 20, 20]]

    def record(name, path, boxes=box, size=(64, 48), labels=(0,)):
        return DetectionRecord(
            name, path, size[0], size[1], np.array(boxes, np.float32).reshape(-1, 4), labels
        )

    dataset = DetectionDataset(
        [
            record("good", good),
            record("truncated", truncated),
            record("missing", tmp_path / "missing.jpg"),
            record("png", png_named_jpg),
            record("gray", gray),
            record("rotated", rotated),
            record("copy", duplicate),
            record("wrong_size", _save(tmp_path / "w.jpg", size=(50, 50))),
            record("inverted", _save(tmp_path / "i.jpg", size=(65, 48)), [[30, 5, 10, 20]], size=(65, 48)),
            record("outside", _save(tmp_path / "o.jpg", size=(66, 48)), [[-3, 5, 70, 20]], size=(66, 48)),
            record("nan", _save(tmp_path / "n.jpg", size=(67, 48)), [[np.nan, 5, 10, 20]], size=(67, 48)),
            record("empty", _save(tmp_path / "e.jpg", size=(68, 48)), [], size=(68, 48), labels=()),
        ],
        ["thing"],
    )
    report = check_dataset(dataset)
    found = {(p.kind, p.image_id) for p in report.problems}
    expected = {
        ("truncated image", "truncated"),
        ("unreadable image", "missing"),
        ("content does not match extension", "png"),
        ("not an RGB image", "gray"),
        ("EXIF-rotated image", "rotated"),
        ("duplicate image", "good"),
        ("annotation size differs from image", "wrong_size"),
        ("degenerate box", "inverted"),
        ("box outside the image", "outside"),
        ("non-finite box", "nan"),
        ("image without boxes", "empty"),
    }
    assert found == expected
    assert report.fatal
    fatal = {p.kind for p in report.problems if p.fatal}
    assert fatal == {"truncated image", "unreadable image", "degenerate box", "non-finite box"}

    cleaned, summary = clean_for_training(dataset, report)
    ids = [r.image_id for r in cleaned.records]
    assert "truncated" not in ids and "missing" not in ids and len(ids) == 10
    outside = next(r for r in cleaned.records if r.image_id == "outside")
    assert outside.boxes.tolist() == [[0, 5, 66, 20]]  # clipped to the 66x48 image
    assert next(r for r in cleaned.records if r.image_id == "inverted").num_objects == 0
    assert "dropped 2 bad boxes, clipped 1 boxes" in summary and "skipped 2 unreadable images" in summary


def test_cli_exit_codes(bccd_subset, tmp_path, capsys):
    assert main(["data", "check", str(bccd_subset), "--fast"]) == 1  # its one zero-area box (SOURCE.md)
    out = capsys.readouterr().out
    assert "degenerate box: 1" in out and "BloodImage_00343" in out
    assert main(["data", "check", str(tmp_path / "no_such_dataset")]) == 1  # a missing input file
    assert "does not exist" in capsys.readouterr().err


def test_cli_exit_code_of_a_clean_set(datasets_dir):
    assert main(["data", "check", str(datasets_dir / "cards"), "--split", "test"]) == 0


# --- what reading leaves out is counted and named in the load summary -------------------------------------


def _voc(root, objects, broken=(), listed_only=()):
    """A VOC folder written by hand: ``objects`` maps an image id to its class names (one 10x10 box each)."""
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image_id, names in objects.items():
        _save(root / "JPEGImages" / f"{image_id}.jpg", size=(64, 48))
        boxes = "".join(
            f"<object><name>{n}</name><bndbox><xmin>{4 * i}</xmin><ymin>1</ymin><xmax>{4 * i + 10}</xmax>"
            f"<ymax>11</ymax></bndbox></object>"
            for i, n in enumerate(names)
        )
        xml = f"<annotation><size><width>64</width><height>48</height></size>{boxes}</annotation>"
        (root / "Annotations" / f"{image_id}.xml").write_text(xml)
    for image_id in broken:
        _save(root / "JPEGImages" / f"{image_id}.jpg", size=(64, 48))
        (root / "Annotations" / f"{image_id}.xml").write_text("<annotation><size><width>64</wid")
    ids = [*objects, *broken, *listed_only]
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


def _summary(dataset, images=False):
    return clean_for_training(dataset, check_dataset(dataset, images=images, decode=False))


def test_boxes_of_classes_missing_from_the_class_list_are_counted_per_class(tmp_path, bccd_subset):
    objects = {"a": ["RBC", "RBC", "WBC", "cat"], "b": ["RBC"] * 5, "c": ["cat"], "d": ["WBC", "RBC"]}
    root = _voc(tmp_path / "blood", objects)
    (tmp_path / "only_cat.txt").write_text("cat\n")
    cleaned, summary = _summary(read_voc(root, class_names=tmp_path / "only_cat.txt"))
    # RBC: 2 + 5 + 1 = 8, WBC: 1 + 1 = 2; the two cats stay
    assert summary == (
        "blood: 4 images, 2 boxes; dropped 0 bad boxes, clipped 0 boxes to the image, skipped 0 unreadable "
        "images; left out 10 boxes of classes not in the class list: RBC 8, WBC 2"
    )
    assert cleaned.num_objects == 2
    # real images: the bccd subset's test split without Platelets leaves out its 17 Platelets boxes
    bccd = read_voc(bccd_subset, "test", class_names=["RBC", "WBC"])
    assert _summary(bccd)[1].endswith("; left out 17 boxes of classes not in the class list: Platelets 17")


def test_unreadable_annotations_are_counted_and_named(tmp_path):
    root = _voc(tmp_path / "v", {"000001": ["cat"], "000002": ["cat", "cat"]}, broken=["000123"])
    cleaned, summary = _summary(read_voc(root))
    assert [r.image_id for r in cleaned.records] == ["000001", "000002"]
    assert summary == (
        "v: 2 images, 3 boxes; dropped 0 bad boxes, clipped 0 boxes to the image, skipped 0 unreadable images; "
        "skipped 1 image with an unreadable annotation: 000123.xml"
    )
    # an image set naming an image whose annotation is missing counts the same way
    root = _voc(tmp_path / "w", {"000001": ["cat"]}, broken=["000123"], listed_only=["000200"])
    assert _summary(read_voc(root, "train"))[1].endswith(
        "; skipped 2 images with an unreadable annotation: 000123.xml, 000200.xml"
    )


def test_yolo_lines_that_do_not_parse_and_unknown_numbers_are_counted(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    _save(tmp_path / "images" / "p.jpg", size=(100, 50))
    _save(tmp_path / "images" / "q.jpg", size=(100, 50))
    (tmp_path / "images" / "r.jpg").write_bytes(b"not an image at all")
    (tmp_path / "labels" / "p.txt").write_text(
        "0 0.5 0.5 0.2 0.4\n1 0.5 0.5\nx 0.1 0.1 0.1 0.1\n5 0.5 0.5 0.1 0.1\n"
    )
    (tmp_path / "labels" / "q.txt").write_text("1 0.5 0.5 0.5 0.5 0.9\n\n0 0.2 0.2 0.2 0.2\n")
    (tmp_path / "labels" / "r.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (tmp_path / "labels" / "s.txt").write_text("0 0.5 0.5 0.1 0.1\n")  # no image s.*
    (tmp_path / "labels" / "t.txt").write_text("\n")  # no image either, but nothing lost
    (tmp_path / "classes.txt").write_text("cat\ndog\n")
    cleaned, summary = _summary(read_yolo(tmp_path / "images"))
    assert [(r.image_id, r.labels.tolist()) for r in cleaned.records] == [("p", [0]), ("q", [0])]
    assert summary == (
        "images: 2 images, 2 boxes; dropped 0 bad boxes, clipped 0 boxes to the image, skipped 1 unreadable "
        "images: r.jpg; left out 1 box of a class not in the class list: #5 1; left out 3 label lines that do "
        "not parse: p.txt:2, p.txt:3, q.txt:1; left out 1 annotation without an image: s.txt"
    )


def test_lst_lines_that_do_not_parse_are_counted(tmp_path):
    _save(tmp_path / "a.jpg", size=(100, 50))
    _save(tmp_path / "b.jpg", size=(100, 50))
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    lines = [
        "0\t2\t6\t1 0.1 0.1 0.5 0.5 0 7 0.2 0.2 0.4 0.4 0\ta.jpg",  # dog kept, class 7 has no name
        "1\t2\t6\t0 0.1 0.1\tb.jpg",  # 3 numbers for an object of 6
        "garbage",
        "",
        "3\t2\t6\t0 0.1 0.1 0.5 0.5 0\tgone.jpg",  # no such image
        "4\t2\t6\t0 0.1 0.1 0.5 0.5 1\tb.jpg",
    ]
    (tmp_path / "train.lst").write_text("\n".join(lines) + "\n")
    cleaned, summary = _summary(read_lst(tmp_path / "train.lst"))
    assert [(r.image_id, r.labels.tolist()) for r in cleaned.records] == [("a", [1]), ("b", [0])]
    assert summary == (
        "train: 2 images, 2 boxes; dropped 0 bad boxes, clipped 0 boxes to the image, skipped 1 unreadable "
        "images: gone.jpg; skipped 2 list lines that do not parse: train.lst:2, train.lst:3; left out 1 box "
        "of a class not in the class list: #7 1"
    )


def test_coco_annotations_left_out_are_counted(tmp_path):
    _save(tmp_path / "i.jpg", size=(40, 30))
    _save(tmp_path / "j.jpg", size=(40, 30))
    annotations = [
        {"id": 1, "image_id": 5, "category_id": 3, "bbox": [1, 2, 10, 20]},
        {"id": 2, "image_id": 5, "category_id": 4, "bbox": [1, 2, 10, 20]},  # 'dog', not in the class list
        {"id": 3, "image_id": 6, "category_id": 4, "bbox": [1, 2, 10, 20]},  # 'dog'
        {"id": 4, "image_id": 99, "category_id": 3, "bbox": [1, 2, 10, 20]},  # no image 99
        {"id": 5, "image_id": 6, "category_id": 8, "bbox": [1, 2, 10, 20]},  # no category 8
        {"id": 6, "image_id": 6, "category_id": 3, "bbox": [1, 2]},  # not a box
        {"id": 7, "image_id": 6, "category_id": 3},
        {"id": 8, "image_id": 7, "category_id": 3, "bbox": [0, 0, 5, 5]},  # image 7's file is missing
    ]
    content = {
        "images": [
            {"id": 5, "file_name": "i.jpg", "width": 40, "height": 30},
            {"id": 6, "file_name": "j.jpg", "width": 40, "height": 30},
            {"id": 7, "file_name": "k.jpg", "width": 40, "height": 30},
        ],
        "annotations": annotations,
        "categories": [{"id": 3, "name": "cat"}, {"id": 4, "name": "dog"}],
    }
    (tmp_path / "instances_x.json").write_text(json.dumps(content))
    dataset = read_coco(tmp_path / "instances_x.json", tmp_path, class_names=["cat"])
    cleaned, summary = _summary(dataset, images=True)
    assert [(r.image_id, r.num_objects) for r in cleaned.records] == [("i", 1), ("j", 0)]
    assert summary == (
        "instances_x: 2 images, 1 boxes; dropped 0 bad boxes, clipped 0 boxes to the image, skipped 1 "
        "unreadable images: k.jpg; left out 3 boxes of classes not in the class list: dog 2, #8 1; left out 2 "
        "annotations that do not parse: annotation 6, annotation 7; left out 1 annotation without an image: "
        "annotation 4"
    )


def test_require_images_refuses_an_empty_set_and_says_why(tmp_path):
    _voc(tmp_path / "ok", {"a": ["cat"]})
    require_images(read_voc(tmp_path / "ok"), "ok")  # one usable image is enough
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    with pytest.raises(DataError) as raised:
        require_images(read_voc(tmp_path / "empty"), "train_data empty")
    assert str(raised.value) == (
        "no usable images in train_data empty (0 unreadable annotations, 0 unreadable images): check the path "
        "and the split, and fix the files that `multibox data check` names"
    )
    root = _voc(tmp_path / "broken", {}, broken=["x", "y"])
    with pytest.raises(
        DataError, match=r"no usable images in b \(2 unreadable annotations, 0 unreadable images\)"
    ):
        require_images(read_voc(root), "b")
    # images that the check finds unreadable count once found, before or after cleaning
    root = _voc(tmp_path / "gone", {"a": ["cat"]}, broken=["z"])
    (root / "JPEGImages" / "a.jpg").unlink()
    dataset = read_voc(root)
    report = check_dataset(dataset, decode=False)
    message = r"no usable images in gone \(1 unreadable annotation, 1 unreadable image\)"
    with pytest.raises(DataError, match=message):
        require_images(dataset, "gone", report)
    with pytest.raises(DataError, match=message):
        require_images(clean_for_training(dataset, report)[0], "gone", report)


def test_check_of_an_empty_dataset_says_so_and_fails(tmp_path, capsys):
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    assert main(["data", "check", str(tmp_path / "empty")]) == 1
    captured = capsys.readouterr()
    assert captured.out == "empty: 0 images, 0 boxes\nno images found\n"
    assert captured.err == (
        f"multibox: error: no usable images in {tmp_path / 'empty'} (0 unreadable annotations, 0 unreadable "
        "images): check the path and the split, and fix the files that `multibox data check` names\n"
    )
