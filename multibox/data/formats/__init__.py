"""Dataset formats: Pascal VOC, COCO JSON, YOLO txt, MXNet .lst and the synthetic shapes set.

``load_dataset`` detects the format from the path; ``save_dataset`` writes any dataset in any format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from multibox.data.formats.classes import resolve_class_names
from multibox.data.formats.coco import read_coco, write_coco
from multibox.data.formats.lst import read_lst, write_lst
from multibox.data.formats.synthetic import SHAPE_CLASSES, make_shapes
from multibox.data.formats.voc import read_voc, write_voc
from multibox.data.formats.yolo import read_yolo, write_yolo
from multibox.data.records import DetectionDataset

FORMATS = ("voc", "coco", "yolo", "lst", "shapes")

__all__ = [
    "FORMATS",
    "SHAPE_CLASSES",
    "detect_format",
    "load_dataset",
    "make_shapes",
    "read_coco",
    "read_lst",
    "read_voc",
    "read_yolo",
    "save_dataset",
    "write_coco",
    "write_lst",
    "write_voc",
    "write_yolo",
]


def detect_format(source: str | Path) -> str:
    """Guess the format of ``source``; ``shapes[:N[:SEED]]`` names the synthetic set."""
    text = str(source)
    if text == "shapes" or text.startswith("shapes:"):
        return "shapes"
    path = Path(source)
    if path.suffix == ".json":
        return "coco"
    if path.suffix == ".lst":
        return "lst"
    if path.is_dir():
        if (path / "Annotations").is_dir():
            return "voc"
        if (path / "images").is_dir() or path.name == "images" or (path.parent.name == "images"):
            return "yolo"
        raise ValueError(
            f"cannot tell the format of {path}: expected Annotations/ (VOC) or images/ + labels/ (YOLO)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    raise ValueError(f"cannot tell the format of {path}; give it explicitly ({', '.join(FORMATS)})")


def load_dataset(
    source: str | Path,
    split: str | None = None,
    format: str | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Read a dataset in any supported format.

    Args:
        source: a VOC folder, a COCO JSON, a YOLO images folder (or its parent with ``images/<split>``), an
            ``.lst`` file, or ``shapes[:NUM_IMAGES[:SEED]]``.
        split: VOC image set, or the YOLO/shapes sub-set (shapes: ``train`` seed 0, ``val`` 1, ``test`` 2).
    """
    format = format or detect_format(source)
    if format == "voc":
        return read_voc(source, split, class_names)
    if format == "coco":
        return read_coco(source, class_names=class_names)
    if format == "lst":
        return read_lst(source, class_names=class_names)
    if format == "yolo":
        path = Path(source)
        if (path / "images").is_dir():
            path = path / "images" / split if split else path / "images"
        return read_yolo(path, class_names)
    if format == "shapes":
        parts = str(source).split(":")
        num_images = int(parts[1]) if len(parts) > 1 else 256
        seed = int(parts[2]) if len(parts) > 2 else {"val": 1, "test": 2}.get(split or "", 0)
        names = SHAPE_CLASSES if class_names is None else tuple(resolve_class_names(class_names, []))
        return make_shapes(num_images, seed=seed, class_names=names)
    raise ValueError(f"unknown format {format!r}; choose from {', '.join(FORMATS)}")


def save_dataset(dataset: DetectionDataset, target: str | Path, format: str, split: str = "all") -> Path:
    """Write ``dataset`` in ``format`` (voc, coco, yolo, lst) under ``target``."""
    target = Path(target)
    if format == "voc":
        return write_voc(dataset, target, split)
    if format == "coco":
        json_path = target if target.suffix == ".json" else target / "annotations" / f"instances_{split}.json"
        image_dir = json_path.parent.parent / "images" / split
        return write_coco(dataset, json_path, image_dir)
    if format == "yolo":
        return write_yolo(dataset, target)
    if format == "lst":
        lst_path = target if target.suffix == ".lst" else target / f"{split}.lst"
        if any(callable(r.image) for r in dataset.records):  # generated images need files for a list
            from dataclasses import replace

            from multibox.data.formats.export_images import place_image

            records = [replace(r, image=place_image(r, lst_path.parent / "images")) for r in dataset.records]
            dataset = replace(dataset, records=records)
        lst_path.parent.mkdir(parents=True, exist_ok=True)
        (lst_path.parent / "labels.txt").write_text("\n".join(dataset.class_names) + "\n")
        return write_lst(dataset, lst_path)
    raise ValueError(f"cannot write format {format!r}; choose from voc, coco, yolo, lst")
