"""COCO detection JSON (``instances_*.json``): read and write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.formats.classes import resolve_class_names
from multibox.data.records import DetectionDataset, DetectionRecord, Problem


def read_coco(
    annotation_file: str | Path,
    image_dir: str | Path | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Read a COCO JSON file.

    Boxes ``[x, y, w, h]`` become ``[x, y, x + w, y + h]``; ``iscrowd`` annotations are kept with their
    ``crowd`` flag set (the loader ignores them in training, evaluation ignores detections on them). Classes
    are the categories in id order unless ``class_names`` is given (then matched by name). Images default to
    the folder next to the JSON named like its ``instances_<set>`` suffix, else the JSON's folder.
    """
    annotation_file = Path(annotation_file)
    data = json.loads(annotation_file.read_text(encoding="utf-8"))
    for key in ("images", "annotations", "categories"):
        if key not in data:
            raise ValueError(f"{annotation_file} is not a COCO detection file: no {key!r} entry")
    if image_dir is None:
        stem = annotation_file.stem.split("_", 1)[-1]
        candidates = [annotation_file.parent.parent / "images" / stem, annotation_file.parent / stem]
        image_dir = next((c for c in candidates if c.is_dir()), annotation_file.parent)
    image_dir = Path(image_dir)

    categories = sorted(data["categories"], key=lambda c: c["id"])
    if class_names is None:
        names = [c["name"] for c in categories]
    else:
        names = resolve_class_names(class_names, [])
    index = {name: i for i, name in enumerate(names)}
    category_class = {c["id"]: index.get(c["name"]) for c in categories}
    category_name = {c["id"]: c["name"] for c in categories}

    objects: dict[int, list] = {img["id"]: [] for img in data["images"]}
    problems = []
    for ann in data["annotations"]:
        image_key = ann["image_id"]
        if image_key not in objects:
            problems.append(
                Problem("annotation without image", str(image_key), f"annotation {ann.get('id')}")
            )
            continue
        cls = category_class.get(ann["category_id"])
        if cls is None:
            name = category_name.get(ann["category_id"], ann["category_id"])
            problems.append(
                Problem("unknown class", str(image_key), f"category {name!r} not in the class list")
            )
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        objects[image_key].append(([x, y, x + w, y + h], cls, bool(ann.get("iscrowd", 0))))

    records = []
    for img in data["images"]:
        rows = objects[img["id"]]
        file_name = img["file_name"]
        records.append(
            DetectionRecord(
                Path(file_name).stem,
                image_dir / file_name,
                int(img.get("width", 0)),
                int(img.get("height", 0)),
                np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
                [r[1] for r in rows],
                crowd=[r[2] for r in rows],
                source_id=int(img["id"]) if isinstance(img["id"], int) else None,
            )
        )
    category_of_name = {c["name"]: c["id"] for c in categories}
    category_ids = [category_of_name.get(name) for name in names]
    return DetectionDataset(
        records,
        names,
        name=annotation_file.stem,
        problems=problems,
        category_ids=category_ids if all(isinstance(c, int) for c in category_ids) else None,
    )


def write_coco(
    dataset: DetectionDataset, annotation_file: str | Path, image_dir: str | Path | None = None
) -> Path:
    """Write ``dataset`` as COCO JSON: categories 1..C in class order and images 1..N, or the ids the dataset
    came with (read from COCO); images placed in ``image_dir``."""
    from multibox.data.formats.export_images import place_image

    annotation_file = Path(annotation_file)
    annotation_file.parent.mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    image_ids = dataset.source_ids() or range(1, len(dataset.records) + 1)  # a COCO file's own ids, kept
    category_ids = dataset.category_ids or list(range(1, len(dataset.class_names) + 1))
    for image_number, record in zip(image_ids, dataset.records, strict=True):
        file_name = Path(record.image).name if not callable(record.image) else f"{record.image_id}.jpg"
        if image_dir is not None:
            file_name = place_image(record, Path(image_dir)).name
        images.append(
            {"id": image_number, "file_name": file_name, "width": record.width, "height": record.height}
        )
        for box, label, crowd in zip(record.boxes, record.labels, record.crowd, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_number,
                    "category_id": category_ids[int(label)],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "area": max(0.0, x2 - x1) * max(0.0, y2 - y1),
                    "iscrowd": int(crowd),
                }
            )
    categories = [{"id": category_ids[i], "name": name} for i, name in enumerate(dataset.class_names)]
    content = {"images": images, "annotations": annotations, "categories": categories}
    annotation_file.write_text(json.dumps(content), encoding="utf-8")
    return annotation_file
