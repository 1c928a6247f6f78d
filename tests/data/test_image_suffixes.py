"""One list of image file endings (multibox.data.image_io.IMAGE_SUFFIXES) for every reader that looks for images."""

from pathlib import Path

import pytest
from PIL import Image

from multibox.data.formats import make_shapes, read_voc, read_yolo, write_voc, write_yolo
from multibox.data.formats.ultralytics import read_ultralytics_yaml
from multibox.data.image_io import to_rgb

# one PIL format per ending, each id saved under one of them (upper case where the camera would write it)
ENDINGS = {".jpe": "JPEG", ".JPG": "JPEG", ".webp": "WEBP", ".tiff": "TIFF", ".gif": "GIF", ".bmp": "BMP"}


def _resave(images: Path) -> dict[str, str]:
    """Every ``images/<id>.jpg`` saved again as ``<id><ending>`` in that ending's format; id -> ending."""
    endings = {}
    for path, (ending, form) in zip(sorted(images.glob("*.jpg")), ENDINGS.items(), strict=False):
        Image.open(path).convert("RGB").save(path.with_suffix(ending), form)
        path.unlink()
        endings[path.stem] = ending
    for leftover in images.glob("*.jpg"):
        leftover.unlink()
    return endings


@pytest.fixture
def shapes():
    return make_shapes(num_images=len(ENDINGS), image_size=(64, 48))


def test_voc_finds_images_saved_under_any_ending(shapes, tmp_path):
    root = write_voc(shapes, tmp_path / "voc", link_images=False)
    endings = _resave(root / "JPEGImages")
    for annotation in (root / "Annotations").glob("*.xml"):  # the file names no longer say the ending
        text = annotation.read_text()
        annotation.write_text(
            text.replace(f"<filename>{annotation.stem}.jpg</filename>", "<filename></filename>")
        )
    dataset = read_voc(root)
    assert {r.image_id: Path(r.image).name for r in dataset.records} == {i: i + e for i, e in endings.items()}
    assert all(to_rgb(r.open_image()).size == (r.width, r.height) == (48, 64) for r in dataset.records)


def test_yolo_and_ultralytics_take_the_same_endings(shapes, tmp_path):
    root = write_yolo(shapes, tmp_path / "yolo", link_images=False)
    endings = _resave(root / "images")
    found = {Path(r.image).name for r in read_yolo(root / "images").records}
    assert found == {i + e for i, e in endings.items()}
    (tmp_path / "data.yaml").write_text(
        f"path: {root}\ntrain: images\nval: images\nnames: {list(shapes.class_names)}\n"
    )
    found = {Path(r.image).name for r in read_ultralytics_yaml(tmp_path / "data.yaml", "train").records}
    assert found == {i + e for i, e in endings.items()}
