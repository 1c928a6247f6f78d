import shutil
from collections import Counter

import numpy as np
from PIL import Image

from multibox.cli import main
from multibox.data.formats import read_voc
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import check_dataset, clean_for_training


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


def test_cli_exit_codes(datasets_dir, capsys):
    assert main(["data", "check", str(datasets_dir / "bccd"), "--fast"]) == 1
    assert "degenerate box: 2" in capsys.readouterr().out
    assert main(["data", "check", str(datasets_dir / "cards"), "--split", "test"]) == 0
    assert main(["data", "check", str(datasets_dir / "no_such_dataset")]) == 2
    assert "does not exist" in capsys.readouterr().err
