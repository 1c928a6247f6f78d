"""A split a source does not have is one error that lists the splits it has, in every format with splits (VOC
image sets, a COCO root, a YOLO images/ folder, a folder of .rec files); training names the setting to change."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from multibox.cli import main
from multibox.data.formats import load_dataset
from multibox.errors import MissingSplitError

RECORDIO = Path(__file__).resolve().parents[1] / "fixtures" / "recordio"


def _voc(root: Path, sets: dict[str, list[str]]) -> Path:
    """A VOC folder of two 32x24 images with one box each, and ``sets`` as ImageSets/Main lists."""
    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem in ("a", "b"):
        Image.new("RGB", (32, 24), "white").save(root / "JPEGImages" / f"{stem}.jpg")
        (root / "Annotations" / f"{stem}.xml").write_text(
            f"<annotation><filename>{stem}.jpg</filename><size><width>32</width><height>24</height>"
            "<depth>3</depth></size><object><name>cell</name><difficult>0</difficult><bndbox><xmin>4</xmin>"
            "<ymin>4</ymin><xmax>20</xmax><ymax>16</ymax></bndbox></object></annotation>"
        )
    if sets:
        (root / "ImageSets" / "Main").mkdir(parents=True)
    for name, stems in sets.items():
        (root / "ImageSets" / "Main" / f"{name}.txt").write_text("\n".join(stems) + "\n")
    return root


def test_voc_names_its_image_sets_without_the_per_class_lists(tmp_path):
    root = _voc(
        tmp_path / "voc07", {"trainval": ["a", "b"], "test": ["b"], "cell_trainval": ["a  1", "b  1"]}
    )
    with pytest.raises(MissingSplitError) as caught:
        load_dataset(root, "train")
    message = str(caught.value)
    assert message == f"no split 'train' in {root}: no ImageSets/Main/train.txt (its splits: test, trainval)"
    assert len(load_dataset(root, "trainval")) == 2  # the sets it names are the ones it reads


def test_a_voc_folder_without_image_sets_says_so_and_reads_whole_without_a_split(tmp_path):
    root = _voc(tmp_path / "labelled", {})
    with pytest.raises(MissingSplitError, match=r"it has no ImageSets/Main/<split>.txt lists"):
        load_dataset(root, "train")
    assert len(load_dataset(root)) == 2


def test_coco_root_yolo_folder_and_rec_folder_list_their_splits(tmp_path):
    coco = tmp_path / "coco"
    (coco / "annotations").mkdir(parents=True)
    for split in ("train2017", "val2017"):
        (coco / "annotations" / f"instances_{split}.json").write_text(
            json.dumps({"images": [], "annotations": [], "categories": [{"id": 1, "name": "cell"}]})
        )
    yolo = tmp_path / "yolo"
    for split in ("train", "valid"):
        (yolo / "images" / split).mkdir(parents=True)
        (yolo / "labels" / split).mkdir(parents=True)
    records = tmp_path / "rec"
    records.mkdir()
    for split in ("train", "val"):
        shutil.copy(RECORDIO / "mxnet.rec", records / f"{split}.rec")
    shutil.copy(RECORDIO / "labels.txt", records / "labels.txt")
    cases = [
        (coco, "val", r"no annotations/instances_val.json \(its splits: train2017, val2017\)"),
        (yolo, "val", r"no images/val/ \(its splits: train, valid\)"),
        (records, "test", r"no test.rec \(.rec files there: train.rec, val.rec\)"),
    ]
    for source, split, listed in cases:
        with pytest.raises(
            MissingSplitError, match=rf"^no split '{split}' in {re.escape(str(source))}: {listed}$"
        ):
            load_dataset(source, split)


def test_training_from_a_source_without_the_train_split_is_one_line_naming_the_setting(tmp_path, capsys):
    root = _voc(tmp_path / "voc07", {"trainval": ["a", "b"], "test": ["b"]})
    code = main(["train", f"train_data={root}", f"out_dir={tmp_path / 'run'}", "max_iterations=1"])
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2
    assert error == (
        f"multibox: error: train_data: no split 'train' in {root}: no ImageSets/Main/train.txt (its splits: "
        "test, trainval); give train_split=NAME of a split it has, or train_split=null for every image"
    )
    assert not (tmp_path / "run" / "checkpoints").exists()
