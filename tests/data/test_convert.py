"""`multibox data convert` never modifies or deletes its source, and refuses a non-empty target by default."""

import hashlib
import os
import shutil
from pathlib import Path

import pytest
from PIL import Image

from multibox.cli import main
from multibox.data.formats import read_voc, save_dataset
from multibox.errors import ConfigError

# The source set, written by hand: image id -> (size, [(class, x1, y1, x2, y2)])
OBJECTS = {
    "a1": ((64, 48), [("cat", 2, 3, 30, 40), ("dog", 10, 10, 20, 20)]),
    "b2": ((50, 40), [("dog", 1, 1, 49, 39)]),
    "c3": ((40, 40), [("cat", 5, 5, 15, 15), ("bird", 20, 20, 30, 30), ("dog", 0, 0, 10, 10)]),
}


def _xml(name, size, objects):
    parts = [f"<annotation><filename>{name}.jpg</filename>"]
    parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for cls, x1, y1, x2, y2 in objects:
        parts.append(
            f"<object><name>{cls}</name><difficult>0</difficult><bndbox><xmin>{x1}</xmin><ymin>{y1}</ymin>"
            f"<xmax>{x2}</xmax><ymax>{y2}</ymax></bndbox></object>"
        )
    return "".join(parts) + "</annotation>\n"


def make_voc(root: Path) -> Path:
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (root / sub).mkdir(parents=True)
    for index, (name, (size, objects)) in enumerate(OBJECTS.items()):
        Image.new("RGB", size, (40 * index, 90, 200)).save(root / "JPEGImages" / f"{name}.jpg")
        (root / "Annotations" / f"{name}.xml").write_text(_xml(name, size, objects))
    (root / "ImageSets" / "Main" / "train.txt").write_text("a1\nb2\nc3\n")
    (root / "labels.txt").write_text("bird\ncat\ndog\n")
    return root


def tree(root: Path) -> dict[str, str]:
    """Every entry under ``root``: files by content hash, links by where they point, folders as such."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            key = str(path.relative_to(root))
            if path.is_symlink():
                found[key] = "link -> " + os.readlink(path)
            elif path.is_dir():
                found[key] = "dir"
            else:
                found[key] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


@pytest.fixture
def source(tmp_path):
    root = make_voc(tmp_path / "src")
    assert len(tree(root)) == 4 + 3 + 3 + 1 + 1  # 4 folders, 3 images, 3 xml, the split file, labels.txt
    return root


def _refused(capsys, argv, *words):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "Traceback" not in captured.err + captured.out
    assert err.count("\n") == 0 and err.startswith("multibox: error: "), err
    for word in words:
        assert word in err, err
    return err


@pytest.mark.parametrize("to_format", ["voc", "yolo", "coco", "lst"])
def test_target_that_is_the_source_is_refused(source, capsys, to_format):
    before = tree(source)
    err = _refused(capsys, ["data", "convert", str(source), str(source), "--to", to_format], "is the source")
    assert str(source) in err
    # also with --overwrite, and with a smaller class list (what once rewrote 452 objects as 384)
    (source.parent / "few.txt").write_text("cat\n")
    argv = ["data", "convert", str(source), str(source), "--to", to_format, "--overwrite"]
    _refused(capsys, [*argv, "--classes", str(source.parent / "few.txt")], "is the source")
    assert tree(source) == before


def test_the_source_named_another_way_is_still_the_source(source, capsys, monkeypatch):
    before = tree(source)
    monkeypatch.chdir(source.parent)
    (source.parent / "alias").symlink_to(source)
    for target in ("src", "./src/", "src/Annotations/..", "alias", str(source.parent / "alias") + "/"):
        _refused(capsys, ["data", "convert", "src", target, "--to", "voc", "--overwrite"], "is the source")
        _refused(capsys, ["data", "convert", "alias", target, "--to", "voc", "--overwrite"], "is the source")
    assert tree(source) == before


@pytest.mark.parametrize("inside", ["out", "JPEGImages", "Annotations/deeper/still", "ImageSets/Main/x.lst"])
def test_target_inside_the_source_is_refused(source, capsys, inside):
    before = tree(source)
    to_format = "lst" if inside.endswith(".lst") else "yolo"
    argv = ["data", "convert", str(source), str(source / inside), "--to", to_format, "--overwrite"]
    _refused(capsys, argv, "is inside the source")
    assert tree(source) == before  # nothing written, not even the new folders


def test_target_holding_the_source_is_refused(tmp_path, capsys):
    outer = tmp_path / "outer"
    source = make_voc(outer / "datasets" / "src")
    before = tree(outer)
    for target in (outer, outer / "datasets"):
        for to_format in ("voc", "coco", "yolo"):
            argv = ["data", "convert", str(source), str(target), "--to", to_format, "--overwrite"]
            _refused(capsys, argv, "holds the source")
    assert tree(outer) == before


def test_target_folder_linked_into_the_source_is_refused(source, tmp_path, capsys):
    # a target whose Annotations/ is a link to the source's: writing there would rewrite the source's files
    target = tmp_path / "linked"
    target.mkdir()
    (target / "Annotations").symlink_to(source / "Annotations")
    before = tree(source)
    _refused(capsys, ["data", "convert", str(source), str(target), "--to", "voc", "--overwrite"], "source")
    assert tree(source) == before


def test_non_empty_target_is_refused_without_overwrite_and_written_with_it(source, tmp_path, capsys):
    target = tmp_path / "dst"
    target.mkdir()
    (target / "notes.txt").write_text("mine\n")
    before_source, before_target = tree(source), tree(target)
    err = _refused(
        capsys, ["data", "convert", str(source), str(target), "--to", "voc"], "not empty", "--overwrite"
    )
    assert str(target) in err
    assert tree(target) == before_target and tree(source) == before_source

    assert main(["data", "convert", str(source), str(target), "--to", "voc", "--overwrite"]) == 0
    assert capsys.readouterr().out.strip() == f"wrote 3 images, 6 boxes as voc to {target}"
    assert tree(source) == before_source
    assert (target / "notes.txt").read_text() == "mine\n"  # files of other names are kept
    assert sorted(p.name for p in (target / "Annotations").iterdir()) == ["a1.xml", "b2.xml", "c3.xml"]
    back = read_voc(target)
    assert (len(back), back.num_objects) == (3, 6)


def test_json_and_lst_targets_refuse_existing_files(source, tmp_path, capsys):
    existing = tmp_path / "out" / "instances_all.json"
    existing.parent.mkdir()
    existing.write_text("{}")
    _refused(capsys, ["data", "convert", str(source), str(existing), "--to", "coco"], "exists", "--overwrite")
    assert existing.read_text() == "{}"
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "labels.txt").write_text("keep\n")
    argv = ["data", "convert", str(source), str(tmp_path / "lists" / "train.lst"), "--to", "lst"]
    _refused(capsys, argv, "labels.txt")
    assert (tmp_path / "lists" / "labels.txt").read_text() == "keep\n"
    assert not (tmp_path / "lists" / "train.lst").exists()


def test_overwriting_an_earlier_conversion_never_writes_through_its_links(source, tmp_path, capsys):
    """An earlier conversion holds links (and a hard link) into the source; converting again over it with
    --overwrite and a smaller class list replaces those entries and leaves the source byte-identical."""
    target = tmp_path / "dst"
    assert main(["data", "convert", str(source), str(target), "--to", "voc"]) == 0
    assert (target / "JPEGImages" / "a1.jpg").is_symlink()
    (target / "labels.txt").unlink()
    (target / "labels.txt").symlink_to(source / "labels.txt")
    (target / "Annotations" / "a1.xml").unlink()
    os.link(source / "Annotations" / "a1.xml", target / "Annotations" / "a1.xml")
    (target / "ImageSets" / "Main" / "train.txt").symlink_to(source / "ImageSets" / "Main" / "train.txt")
    before = tree(source)
    (tmp_path / "two.txt").write_text("cat\ndog\n")
    argv = ["data", "convert", str(source), str(target), "--to", "voc", "--split", "train"]
    assert main([*argv, "--overwrite", "--classes", str(tmp_path / "two.txt")]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    assert out == (
        f"wrote 3 images, 5 boxes as voc to {target}; left out 1 box of a class not in the class list: bird 1"
    )
    assert tree(source) == before
    assert (target / "labels.txt").read_text() == "cat\ndog\n" and not (target / "labels.txt").is_symlink()
    assert "bird" not in (target / "Annotations" / "c3.xml").read_text()
    assert not (target / "Annotations" / "a1.xml").samefile(source / "Annotations" / "a1.xml")
    assert read_voc(target, "train").num_objects == 5


def test_stale_image_of_an_earlier_conversion_is_replaced(source, tmp_path, capsys):
    target = tmp_path / "dst"
    (target / "images").mkdir(parents=True)
    stale = tmp_path / "other.jpg"
    Image.new("RGB", (8, 8)).save(stale)
    (target / "images" / "a1.jpg").symlink_to(stale)  # a link of this name to a different image
    assert main(["data", "convert", str(source), str(target), "--to", "yolo", "--overwrite"]) == 0
    capsys.readouterr()
    assert Path(os.readlink(target / "images" / "a1.jpg")) == (source / "JPEGImages" / "a1.jpg").resolve()


def test_yolo_source_folders_are_protected(source, tmp_path, capsys):
    yolo = tmp_path / "yolo"
    assert main(["data", "convert", str(source), str(yolo / "train"), "--to", "yolo"]) == 0
    capsys.readouterr()
    nested = tmp_path / "nested"  # root/images/train + root/labels/train, read from the images folder
    for sub in ("images", "labels"):
        shutil.copytree(yolo / "train" / sub, nested / sub / "train", symlinks=True)
    shutil.copy(yolo / "train" / "classes.txt", nested / "classes.txt")
    before = tree(nested)
    images = str(nested / "images" / "train")
    for target in (nested / "labels", nested / "labels" / "train", nested):
        _refused(capsys, ["data", "convert", images, str(target), "--to", "yolo", "--overwrite"], "source")
    assert tree(nested) == before


def test_coco_and_lst_sources_keep_their_files(source, tmp_path, capsys):
    coco = tmp_path / "coco" / "annotations" / "instances_all.json"
    assert main(["data", "convert", str(source), str(coco), "--to", "coco"]) == 0
    lst = tmp_path / "lists" / "all.lst"
    assert main(["data", "convert", str(source), str(lst), "--to", "lst"]) == 0
    capsys.readouterr()
    coco_before, lst_before = tree(tmp_path / "coco"), tree(tmp_path / "lists")
    # the same file, the folder holding it, and a list whose labels.txt is the source's
    _refused(capsys, ["data", "convert", str(coco), str(coco), "--to", "coco", "--overwrite"], "replace")
    _refused(capsys, ["data", "convert", str(coco), str(coco.parent), "--to", "voc", "--overwrite"], "holds")
    argv = ["data", "convert", str(lst), str(lst.parent / "other.lst"), "--to", "lst", "--overwrite"]
    _refused(capsys, argv, "labels.txt")
    assert tree(tmp_path / "coco") == coco_before and tree(tmp_path / "lists") == lst_before
    # written elsewhere, both come back whole
    assert main(["data", "convert", str(coco), str(tmp_path / "from_coco"), "--to", "voc"]) == 0
    assert main(["data", "convert", str(lst), str(tmp_path / "from_lst"), "--to", "voc"]) == 0
    assert capsys.readouterr().out.count("wrote 3 images, 6 boxes") == 2


def test_empty_source_is_an_error_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "empty" / "Annotations").mkdir(parents=True)
    assert main(["data", "convert", str(tmp_path / "empty"), str(tmp_path / "out"), "--to", "coco"]) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and captured.err.count("\n") == 1
    assert (
        f"no usable images in {tmp_path / 'empty'} (0 unreadable annotations, 0 unreadable images)"
        in captured.err
    )
    assert not (tmp_path / "out").exists()


def test_save_dataset_refuses_to_write_over_the_datasets_images(source):
    before = tree(source)
    dataset = read_voc(source)
    for format in ("voc", "yolo", "lst", "coco"):
        with pytest.raises(ConfigError, match="the dataset's images"):
            save_dataset(dataset, source, format)
    with pytest.raises(ConfigError, match="the dataset's images"):
        save_dataset(dataset, source / "JPEGImages" / "x.lst", "lst")
    assert tree(source) == before
