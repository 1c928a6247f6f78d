"""YOLO txt: ``images/<name>.jpg`` with ``labels/<name>.txt`` lines ``cls cx cy w h`` (normalised)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.formats.classes import resolve_class_names
from multibox.data.image_io import IMAGE_SUFFIXES, ImageDecodeError, open_image
from multibox.data.records import DetectionDataset, DetectionRecord, Problem


def _labels_dir_for(images_dir: Path) -> Path:
    parts = list(images_dir.parts)
    if "images" in parts:  # Ultralytics layout: .../images/train -> .../labels/train
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
        return Path(*parts)
    return images_dir


def _read_label_file(label_file: Path, image_id: str, problems: list) -> list[tuple] | None:
    """The ``(cls, cx, cy, w, h)`` rows of one label file (bad lines reported and left out), or None when
    the file cannot be read (reported; its image is left out)."""
    try:
        text = label_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        detail = f"{label_file.name}: {error}"
        problems.append(Problem("unreadable annotation", image_id, detail, True, label_file.name))
        return None
    rows = []
    for number, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        where = f"{label_file.name}:{number}"
        try:
            if len(fields) != 5:
                raise ValueError(f"{len(fields)} fields")
            rows.append((int(fields[0]), *(float(v) for v in fields[1:5])))
        except ValueError:
            detail = f"{where}: {line.strip()!r} is not 'class cx cy w h'"
            problems.append(Problem("bad label line", image_id, detail, subject=where))
    return rows


def _orphan_labels(labels_dir: Path, image_paths: list[Path], images_dir: Path) -> list[Problem]:
    """An ``annotation without image`` problem for each non-empty label file that no image matches."""
    if not labels_dir.is_dir():
        return []
    stems = {p.stem for p in image_paths}
    problems = []
    for label_file in sorted(labels_dir.glob("*.txt")):
        if label_file.name == "classes.txt" or label_file.stem in stems:
            continue
        try:
            has_lines = any(line.strip() for line in label_file.read_text(encoding="utf-8").splitlines())
        except (OSError, UnicodeDecodeError):
            has_lines = True
        if has_lines:
            detail = f"{label_file.name} has no image {label_file.stem}.* in {images_dir}"
            problems.append(
                Problem("annotation without image", label_file.stem, detail, subject=label_file.name)
            )
    return problems


def _yolo_record(path: Path, rows: list[tuple], names: list[str], problems: list) -> DetectionRecord | None:
    """The record of one image (its size from the header), or None when the image cannot be opened."""
    try:
        with open_image(path) as image:
            width, height = image.size
    except ImageDecodeError as error:
        problems.append(
            Problem(error.problem_kind, path.stem, f"{path.name}: {error.reason}", True, path.name)
        )
        return None
    kept = [r for r in rows if 0 <= r[0] < len(names)]
    for r in rows:
        if not 0 <= r[0] < len(names):
            detail = f"class number {r[0]} not in the class list ({len(names)} names)"
            problems.append(Problem("unknown class", path.stem, detail, subject=f"#{r[0]}"))
    boxes = np.array(
        [
            [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height]
            for _, cx, cy, w, h in kept
        ],
        np.float32,
    ).reshape(-1, 4)
    return DetectionRecord(path.stem, path, width, height, boxes, [r[0] for r in kept])


def read_yolo(
    images_dir: str | Path,
    class_names: Sequence[str] | str | Path | None = None,
    labels_dir: str | Path | None = None,
) -> DetectionDataset:
    """Read YOLO annotations; image sizes come from the image headers (no decoding).

    ``class_names`` defaults to ``classes.txt`` in the labels folder or its parent; without names, classes are
    called by their numbers. Nothing is left out silently; each is reported as a problem: a label line that
    is not ``cls cx cy w h`` (``bad label line``, the line left out), a class number without a name
    (``unknown class``, subject ``#<number>``), a label file that cannot be read (``unreadable annotation``,
    its image left out), a label file without an image (``annotation without image``).
    """
    images_dir = Path(images_dir)
    labels_dir = Path(labels_dir) if labels_dir is not None else _labels_dir_for(images_dir)
    image_paths = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    default_names = next(
        (f for f in (labels_dir / "classes.txt", labels_dir.parent / "classes.txt") if f.is_file()), None
    )
    problems, rows_by_image = [], {}
    for path in image_paths:
        label_file = labels_dir / f"{path.stem}.txt"
        rows = _read_label_file(label_file, path.stem, problems) if label_file.is_file() else []
        if rows is not None:
            rows_by_image[path] = rows
    problems += _orphan_labels(labels_dir, image_paths, images_dir)

    names = resolve_class_names(class_names, [], default_names)
    if not names:
        seen = {r[0] for rows in rows_by_image.values() for r in rows}
        names = [str(i) for i in range(max(seen) + 1)] if seen else []
    records = [_yolo_record(path, rows, names, problems) for path, rows in rows_by_image.items()]
    return DetectionDataset(
        [r for r in records if r is not None], names, name=images_dir.name, problems=problems
    )


def write_yolo(dataset: DetectionDataset, root: str | Path, link_images: bool = True) -> Path:
    """Write ``root/images``, ``root/labels`` and ``root/classes.txt`` (files of the same name replaced)."""
    from multibox.data.formats.export_images import place_image, replace_file

    root = Path(root)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for record in dataset.records:
        place_image(record, root / "images", link=link_images)
        lines = []
        for box, label in zip(record.boxes, record.labels, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            cx, cy = (x1 + x2) / 2 / record.width, (y1 + y2) / 2 / record.height
            w, h = (x2 - x1) / record.width, (y2 - y1) / record.height
            lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
        label_file = replace_file(root / "labels" / f"{record.image_id}.txt")
        label_file.write_text("".join(line + "\n" for line in lines))
    replace_file(root / "classes.txt").write_text("\n".join(dataset.class_names) + "\n")
    return root
