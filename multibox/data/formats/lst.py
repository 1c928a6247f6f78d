"""The original's ``.lst`` image list: ``index \\t 2 \\t 6 \\t cls x1 y1 x2 y2 difficult ... \\t path``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.formats.classes import resolve_class_names
from multibox.data.image_io import ImageDecodeError, open_image
from multibox.data.records import DetectionDataset, DetectionRecord, ImageSource, Problem
from multibox.errors import DataError


def read_lst(
    path: str | Path, root: str | Path | None = None, class_names: Sequence[str] | str | Path | None = None
) -> DetectionDataset:
    """Read an MXNet detection ``.lst`` (fields tab separated; coordinates normalised to [0, 1]).

    Image paths are relative to ``root`` (default: the list's folder). Image sizes are read from the image
    headers to convert coordinates to pixels. Object widths other than 6 are accepted (extra columns dropped;
    a width of 5 means no difficult flag). A line that does not parse leaves its image out (``bad list line``,
    subject ``<list>:<line>``); an object whose class number has no name is left out (``unknown class``,
    subject ``#<number>``).
    """
    path = Path(path)
    root = Path(root) if root is not None else path.parent
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DataError(f"{path} is not a text image list ({error}); give an MXNet .lst file") from None
    rows, problems, max_class = [], [], -1
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name}:{number}"
        fields = line.rstrip("\n").split("\t")
        try:
            if len(fields) < 3:
                raise ValueError("expected index, header, objects and path separated by tabs")
            values = [float(v) for v in " ".join(fields[1:-1]).split()]
            header, width = int(values[0]), int(values[1])
            if width < 5:
                raise ValueError(f"object width {width} < 5")
            objects = np.array(values[header:], np.float64).reshape(-1, width)
        except (ValueError, IndexError) as error:
            problems.append(Problem("bad list line", f"line {number}", f"{where}: {error}", True, where))
            continue
        rows.append((fields[0].strip(), fields[-1].strip(), objects))
        finite = objects[np.isfinite(objects[:, 0]), 0]
        if len(finite):
            max_class = max(max_class, int(finite.max()))
    names = resolve_class_names(class_names, [], root / "labels.txt")
    if not names:
        names = [str(i) for i in range(max_class + 1)]

    records = []
    for _, relative, objects in rows:
        image_path = root / relative
        image_id = Path(relative).stem
        try:
            with open_image(image_path) as image:
                width, height = image.size
        except ImageDecodeError as error:
            name = Path(relative).name
            problems.append(Problem(error.problem_kind, image_id, f"{name}: {error.reason}", True, name))
            continue
        record, unknown = record_from_objects(image_id, image_path, width, height, objects, names)
        records.append(record)
        problems += unknown
    return DetectionDataset(records, names, name=path.stem, problems=problems)


def record_from_objects(
    image_id: str, image: ImageSource, width: int, height: int, objects: np.ndarray, names: Sequence[str]
) -> tuple[DetectionRecord, list[Problem]]:
    """The record of ``(n, >= 5)`` normalised objects ``cls x1 y1 x2 y2 [difficult ...]`` (the original's
    packed label, in ``.lst`` and ``.rec`` files), and an ``unknown class`` problem (subject ``#<number>``)
    for each object whose class number has no name in ``names``; those objects are left out."""
    classes = objects[:, 0]
    known = np.isfinite(classes) & (classes == np.round(classes)) & (classes >= 0) & (classes < len(names))
    problems = []
    for value in classes[~known]:
        number = f"{value:g}"
        detail = f"class number {number} not in the class list ({len(names)} names)"
        problems.append(Problem("unknown class", image_id, detail, subject=f"#{number}"))
    objects = objects[known]
    scale = np.array([width, height, width, height], np.float64)
    boxes = (objects[:, 1:5] * scale).astype(np.float32)
    difficult = objects[:, 5] > 0 if objects.shape[1] > 5 else None
    return DetectionRecord(image_id, image, width, height, boxes, objects[:, 0], difficult), problems


def write_lst(dataset: DetectionDataset, path: str | Path, root: str | Path | None = None) -> Path:
    """Write the list as ``prepare_dataset.py`` does (4 decimals; images without objects skipped)."""
    from multibox.data.formats.export_images import replace_file

    path = Path(path)
    root = Path(root) if root is not None else path.parent
    lines = []
    for index, record in enumerate(dataset.records):
        if record.num_objects == 0 or callable(record.image):
            continue
        scale = np.array([record.width, record.height, record.width, record.height], np.float64)
        objects = np.concatenate(
            [
                record.labels[:, None].astype(np.float64),
                record.boxes.astype(np.float64) / scale,
                record.difficult[:, None].astype(np.float64),
            ],
            axis=1,
        )
        numbers = "\t".join(f"{v:.4f}" for v in objects.ravel())
        relative = os.path.relpath(Path(record.image).resolve(), root.resolve())
        lines.append(f"{index}\t2\t6\t{numbers}\t{relative}")
    path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(path).write_text("".join(line + "\n" for line in lines))
    return path
