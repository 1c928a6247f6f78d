"""Ultralytics data.yaml: every layout of a split, names as a list and a mapping, and each error's message."""

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from multibox.cli import main
from multibox.data.formats import detect_format, load_dataset
from multibox.data.formats.ultralytics import (
    MissingSplitError,
    label_path,
    read_ultralytics_yaml,
    recognises,
)
from multibox.errors import DataError

# image name -> (size, label lines, expected pixel boxes [x1, y1, x2, y2], expected labels)
IMAGES = {
    "a": ((100, 50), "1 0.5 0.5 0.2 0.4\n0 0.1 0.1 0.2 0.2\n", [[40, 15, 60, 35], [0, 0, 20, 10]], [1, 0]),
    "b": ((200, 100), "2 0.25 0.75 0.5 0.5\n", [[0, 50, 100, 100]], [2]),
    "c": ((64, 32), None, [], []),  # no label file: an image without boxes
}
NAMES = ["cat", "dog", "bird"]


def _image(folder: Path, stem: str, labels_folder: Path | None = None) -> Path:
    size, lines, _, _ = IMAGES[stem]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}.jpg"
    Image.new("RGB", size, (10, 20, 30)).save(path)
    if lines is not None:
        labels = labels_folder or label_path(path).parent
        labels.mkdir(parents=True, exist_ok=True)
        (labels / f"{stem}.txt").write_text(lines)
    return path


def _yaml(file: Path, **content) -> Path:
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text(yaml.safe_dump(content))
    return file


def _check(dataset, stems):
    assert [r.image_id for r in dataset.records] == list(stems)
    for record, stem in zip(dataset.records, stems, strict=True):
        size, _, boxes, labels = IMAGES[stem]
        assert (record.width, record.height) == size
        np.testing.assert_allclose(record.boxes, np.array(boxes, np.float32).reshape(-1, 4), atol=1e-3)
        assert record.labels.tolist() == labels
        assert Path(record.image).is_file()


def _folders(root: Path) -> None:
    _image(root / "images" / "train", "a")
    _image(root / "images" / "train", "c")
    _image(root / "images" / "val", "b")


def test_label_path_replaces_the_last_images_folder():
    assert label_path(Path("/d/images/x/images/train/a.b.jpg")) == Path("/d/images/x/labels/train/a.b.txt")
    assert label_path(Path("/d/pics/images.jpg")) == Path("/d/pics/images.txt")


def test_folders_names_list_and_detection(tmp_path):
    _folders(tmp_path / "ds")
    data = _yaml(tmp_path / "ds" / "data.yaml", train="images/train", val="images/val", names=NAMES)
    assert recognises(data) and detect_format(data) == "ultralytics"
    train = load_dataset(data, "train")
    assert train.class_names == NAMES
    _check(train, ["a", "c"])
    _check(load_dataset(data, "val"), ["b"])
    _check(load_dataset(data, "valid"), ["b"])
    _check(load_dataset(data), ["a", "c", "b"])  # no split: every split defined
    assert not train.problems


def test_path_key_txt_lists_and_names_dict(tmp_path):
    root = tmp_path / "dataset"
    _folders(root)
    (root / "train.txt").write_text(f"./images/train/c.jpg\nimages/train/a.jpg\n\n{root}/images/val/b.jpg\n")
    data = _yaml(
        tmp_path / "cfg" / "data.yml",
        path="../dataset",
        train="train.txt",
        val="images/val",
        names={0: "cat", 1: "dog", 2: "bird"},
        download="https://example.invalid/never-fetched.zip",
    )
    train = load_dataset(data, "train")
    assert train.class_names == NAMES
    _check(train, ["c", "a", "b"])


def test_list_of_folders_and_nested_labels(tmp_path):
    _image(tmp_path / "part1" / "images", "a")
    _image(tmp_path / "part2" / "images" / "sub", "b")
    _image(tmp_path / "part2" / "images", "c")
    data = _yaml(tmp_path / "data.yaml", train=["part1/images", "part2/images"], names=NAMES, nc=3)
    _check(read_ultralytics_yaml(data, "train"), ["a", "c", "b"])


def test_repeated_stems_get_distinct_ids_and_label_problems_are_reported(tmp_path):
    _image(tmp_path / "images" / "train", "a")
    _image(tmp_path / "images" / "val", "a")
    (tmp_path / "labels" / "val" / "a.txt").write_text("7 0.5 0.5 0.2 0.2\nbad line\n")
    (tmp_path / "labels" / "val" / "orphan.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    data = _yaml(tmp_path / "data.yaml", train="images/train", val="images/val", names=NAMES)
    dataset = read_ultralytics_yaml(data)
    assert [r.image_id for r in dataset.records] == ["images_train_a", "images_val_a"]
    kinds = sorted(p.kind for p in dataset.problems)
    assert kinds == ["annotation without image", "bad label line", "unknown class"]


def test_class_names_given_replace_the_yaml_names(tmp_path):
    _folders(tmp_path)
    data = _yaml(tmp_path / "data.yaml", train="images/train", names=["x"])
    assert read_ultralytics_yaml(data, "train", ["p", "q", "r"]).class_names == ["p", "q", "r"]


@pytest.mark.parametrize(
    "text, message",
    [
        ("train: [unclosed\nnames: [a]\n", "not valid YAML at line"),
        ("- just\n- a list\n", "expected a mapping"),
        ("train: images/train\nnames: {0: a, 2: b}\n", r"class numbers \[0, 2\]; they must be 0..1"),
        ("train: images/train\nnames: a\n", "names must be a list"),
        ("train: images/train\nnames: [a, b]\nnc: 3\n", "nc is 3 but names lists 2"),
        ("train: images/train\nnames: [a, a]\n", "listed twice"),
        ("path: nowhere\ntrain: images/train\nnames: [a]\n", "path 'nowhere' .* not a folder"),
        ("train: images/none\nnames: [a]\ndownload: x\n", "does not exist.*never downloads"),
        ("train: a.jpg\nnames: [a]\n", "not a folder or a .txt list"),
    ],
)
def test_errors_name_the_file_and_what_to_do(tmp_path, text, message):
    _folders(tmp_path)
    Image.new("RGB", (4, 4)).save(tmp_path / "a.jpg")
    data = tmp_path / "data.yaml"
    data.write_text(text)
    with pytest.raises(DataError, match=message) as caught:
        read_ultralytics_yaml(data, "train")
    assert str(data) in str(caught.value) and "\n" not in str(caught.value)


def test_undefined_split_names_the_splits_there(tmp_path):
    _folders(tmp_path)
    data = _yaml(tmp_path / "data.yaml", train="images/train", val="images/val", test=None, names=NAMES)
    with pytest.raises(MissingSplitError, match=r"no split 'test'; its splits: train, val") as caught:
        load_dataset(data, "test")
    assert isinstance(caught.value, DataError) and isinstance(caught.value, FileNotFoundError)
    with pytest.raises(DataError, match="does not exist"):
        read_ultralytics_yaml(tmp_path / "missing.yaml", "train")


def test_other_yaml_files_are_not_recognised(tmp_path):
    assert not recognises(_yaml(tmp_path / "config.yaml", epochs=3, names=["a"]))
    assert not recognises(_yaml(tmp_path / "list.yaml", train="x"))
    (tmp_path / "bad.yaml").write_text("train: [\n")
    assert not recognises(tmp_path / "bad.yaml")
    assert not recognises(tmp_path / "absent.yaml")
    _folders(tmp_path / "ds")
    assert not recognises(tmp_path / "ds")


def test_data_check_of_a_yaml_split(tmp_path, capsys):
    _folders(tmp_path)
    data = _yaml(tmp_path / "data.yaml", train="images/train", val="images/val", names=NAMES)
    assert main(["data", "check", str(data), "--split", "val"]) == 0
    assert main(["data", "check", str(data), "--split", "test"]) == 1
    assert "no split 'test'; its splits: train, val" in capsys.readouterr().err
