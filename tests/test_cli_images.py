"""Bad images through the command line: data check, evaluate and detect name them and go on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
from PIL import Image

from multibox.cli import main
from tests.image_helpers import encode, grey16_ramp, huge_png, truncate_jpeg


def _voc(root: Path, items: list[tuple[str, Path | bytes, str, int, int, list]]) -> Path:
    """A VOC folder: ``(image_id, source file or bytes, suffix, width, height, [(name, x1, y1, x2, y2)])``."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, source, suffix, width, height, objects in items:
        target = root / "JPEGImages" / f"{image_id}{suffix}"
        if isinstance(source, bytes):
            target.write_bytes(source)
        else:
            shutil.copyfile(source, target)
        boxes = "".join(
            f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
            for name, x1, y1, x2, y2 in objects
        )
        (root / "Annotations" / f"{image_id}.xml").write_text(
            f"<annotation><filename>{target.name}</filename><size><width>{width}</width>"
            f"<height>{height}</height><depth>3</depth></size>{boxes}</annotation>"
        )
    return root


def _split(root: Path, name: str, ids: list[str]) -> None:
    (root / "ImageSets" / "Main" / f"{name}.txt").write_text("".join(f"{i}\n" for i in ids))


def test_data_check_reports_a_huge_png_in_both_modes_without_a_traceback(tmp_path, capsys):
    good = encode(Image.new("RGB", (40, 30), "white"), "PNG")
    root = _voc(
        tmp_path / "voc",
        [
            ("huge", huge_png(20_000, 20_000), ".png", 20_000, 20_000, [("cell", 10, 10, 500, 500)]),
            ("fine", good, ".png", 40, 30, [("cell", 2, 2, 20, 20)]),
        ],
    )
    for fast in ([], ["--fast"]):
        assert main(["data", "check", str(root), *fast]) == 1
        captured = capsys.readouterr()
        assert "Traceback" not in captured.err + captured.out
        assert "ERROR  image too large: 1" in captured.out
        assert "huge: huge.png: image of 400,000,000 pixels" in captured.out


def _bccd_copy(bccd_subset: Path, root: Path, count: int, bad: int) -> tuple[Path, list[str]]:
    test_ids = (bccd_subset / "ImageSets" / "Main" / "test.txt").read_text().split()
    annotations = sorted(test_ids)[:count]
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for i, image_id in enumerate(annotations):
        shutil.copyfile(
            bccd_subset / "Annotations" / f"{image_id}.xml",
            root / "Annotations" / f"{image_id}.xml",
        )
        source = bccd_subset / "JPEGImages" / f"{image_id}.jpg"
        target = root / "JPEGImages" / f"{image_id}.jpg"
        if i == bad:
            target.write_bytes(truncate_jpeg(source.read_bytes()))
        else:
            shutil.copyfile(source, target)
    shutil.copyfile(bccd_subset / "labels.txt", root / "labels.txt")
    return root, annotations


def _scores(printed: str) -> str:
    return re.search(r"mAP VOC07 \S+  VOC area \S+  \(\d+ images", printed).group(0)


def test_evaluate_excludes_and_names_the_unreadable_image(bccd_checkpoint, bccd_subset, tmp_path, capfd):
    root, ids = _bccd_copy(bccd_subset, tmp_path / "voc", count=10, bad=3)
    _split(root, "all", ids)
    _split(root, "good", ids[:3] + ids[4:])
    common = ["evaluate", "--checkpoint", str(bccd_checkpoint), "--data", str(root), "--device", "cpu"]
    common += ["--out", str(tmp_path / "evaluation")]
    assert main([*common, "--split", "all"]) == 0
    captured = capfd.readouterr()
    assert f"excluded 1 unreadable images from the score: {ids[3]}\n" in captured.out
    assert f"skipped unreadable image {ids[3]}: image file is truncated" in captured.err
    with_bad = _scores(captured.out)
    assert main([*common, "--split", "good"]) == 0
    captured = capfd.readouterr()
    assert "excluded" not in captured.out
    assert with_bad == _scores(captured.out) and with_bad.endswith("(9 images")


def test_detect_processes_every_readable_image_and_names_the_bad_ones(
    bccd_checkpoint, bccd_subset, tmp_path, capsys
):
    sources = sorted((bccd_subset / "JPEGImages").glob("*.jpg"))[:2]
    images = tmp_path / "images"
    images.mkdir()
    good = [images / "a.jpg", images / "b.jpg", images / "deep.png"]
    shutil.copyfile(sources[0], good[0])
    shutil.copyfile(sources[1], good[1])
    Image.fromarray(np.tile(grey16_ramp(8, 64), (8, 1))).save(good[2])  # 16-bit
    cut = images / "cut.jpg"
    cut.write_bytes(truncate_jpeg(sources[0].read_bytes()))
    huge = images / "huge.png"
    huge.write_bytes(huge_png())
    missing = images / "missing.jpg"
    checkpoint = ["--checkpoint", str(bccd_checkpoint), "--thresh", "0.3", "--device", "cpu"]

    out = tmp_path / "out"
    paths = [good[0], cut, good[1], huge, missing, good[2]]
    assert main(["detect", *map(str, paths), *checkpoint, "--out", str(out)]) == 1
    captured = capsys.readouterr()
    bad_lines = [line for line in captured.err.splitlines() if line.startswith("skipped unreadable image")]
    assert bad_lines == [
        f"skipped unreadable image {cut}: " + bad_lines[0].split(": ", 1)[1],
        f"skipped unreadable image {huge}: " + bad_lines[1].split(": ", 1)[1],
        f"skipped unreadable image {missing}: No such file or directory",
    ]
    assert "truncated" in bad_lines[0] and "400,000,000 pixels" in bad_lines[1]
    assert "Traceback" not in captured.err
    report = json.loads((out / "detections.json").read_text())
    assert [entry["image"] for entry in report] == [str(p) for p in good]
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.jpg", "deep.png", "detections.json"]

    alone = tmp_path / "alone"
    assert main(["detect", *map(str, good), *checkpoint, "--out", str(alone)]) == 0
    assert json.loads((alone / "detections.json").read_text()) == report  # the bad ones changed nothing
    assert sum(len(entry["detections"]) for entry in report[:2]) > 10


def test_evaluate_writes_where_the_detector_fails(bccd_checkpoint, bccd_subset, tmp_path, capsys):
    import csv

    out = tmp_path / "evaluation"
    args = ["evaluate", "--checkpoint", str(bccd_checkpoint), "--data", str(bccd_subset), "--split", "test"]
    assert main([*args, "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    names = {"pr_curves.png", "confusion_matrix.png", "per_class.csv", "confusion_matrix.csv"}
    assert names <= {p.name for p in out.iterdir()}
    rows = {row["class"]: row for row in csv.DictReader((out / "per_class.csv").open())}
    assert set(rows) == {"Platelets", "RBC", "WBC"}
    for name, row in rows.items():  # the table's AP is the AP evaluate printed for that class
        assert f"{float(row['ap_voc07']):.4f}" in printed, name
    assert "F1-best score thresholds: " in printed
