"""COCO detection JSON (``instances_*.json``): read and write."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.formats.classes import resolve_class_names
from multibox.data.records import DetectionDataset, DetectionRecord, Problem
from multibox.errors import ConfigError, DataError, MissingSplitError


def _checked_categories(annotation_file: Path, categories: list) -> list[dict]:
    """The categories, refusing entries without an id and name, and two of one id or one name: merged, their
    boxes would be mislabelled."""
    by_id: dict[object, str] = {}
    by_name: dict[str, object] = {}
    for number, category in enumerate(categories):
        if not isinstance(category, dict) or "id" not in category or "name" not in category:
            raise DataError(
                f"{annotation_file}: categories[{number}] needs an 'id' and a 'name'; fix the entry"
            )
        cid, name = category["id"], category["name"]
        if cid in by_id:
            raise DataError(
                f"{annotation_file}: category id {cid!r} is used twice ({by_id[cid]!r} and {name!r}); "
                "give each category its own id"
            )
        if name in by_name:
            raise DataError(
                f"{annotation_file}: categories {by_name[name]!r} and {cid!r} are both named {name!r}; "
                "rename one, or merge them into one category (and its annotations) in the file"
            )
        by_id[cid], by_name[name] = name, cid
    return categories


def _check_images(annotation_file: Path, images: list) -> None:
    """Refuse image entries without an id or file name, and two entries of one id (their boxes would mix)."""
    seen: dict[object, str] = {}
    for number, image in enumerate(images):
        if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
            raise DataError(
                f"{annotation_file}: images[{number}] needs an 'id' and a 'file_name'; fix the entry"
            )
        if image["id"] in seen:
            raise DataError(
                f"{annotation_file}: image id {image['id']!r} is used twice ({seen[image['id']]} and "
                f"{image['file_name']}); give each image its own id"
            )
        seen[image["id"]] = image["file_name"]


def _load_json(annotation_file: Path) -> dict:
    """The parsed file, refusing anything that is not JSON with ``images``, ``annotations``, ``categories``."""
    try:
        data = json.loads(annotation_file.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{annotation_file} is not valid JSON ({error}); fix or re-export the file") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DataError(f"{annotation_file} is not a COCO detection file: no {key!r} list")
    return data


def _default_image_dir(annotation_file: Path, images: list) -> Path:
    """The image folder of ``instances_<set>.json``: ``../images/<set>``, ``<set>`` beside the JSON or
    ``../<set>`` (the standard layout: ``annotations/`` beside ``val2017/``) when present, where ``<set>`` is
    also the set named in COCO 2014 file names (``COCO_val2014_...jpg``: ``val2014``, the folder of
    ``valminusminival2014``); else the JSON's folder."""
    sets = [annotation_file.stem.split("_", 1)[-1]]
    parts = Path(str(images[0].get("file_name", ""))).name.split("_") if images else []
    if len(parts) > 2 and parts[0] == "COCO":
        sets.append(parts[1])
    root = annotation_file.parent.parent
    candidates = [c for s in sets for c in (root / "images" / s, annotation_file.parent / s, root / s)]
    return next((c for c in candidates if c.is_dir()), annotation_file.parent)


def _parse_annotation(
    ann, number: int, category_class: dict, category_name: dict, image_ids
) -> tuple | Problem:
    """``(image_id, (box, class, crowd))`` of one annotation, or the :class:`Problem` that leaves it out."""
    label = f"annotation {ann.get('id', f'#{number}') if isinstance(ann, dict) else f'#{number}'}"
    try:
        image_key, category = ann["image_id"], ann["category_id"]
        x, y, w, h = (float(v) for v in ann["bbox"])
    except (TypeError, KeyError, ValueError) as error:
        detail = f"{label}: {type(error).__name__} {error}; expected image_id, category_id, bbox [x, y, w, h]"
        image_of = str(ann.get("image_id", "?")) if isinstance(ann, dict) else "?"
        return Problem("bad annotation", image_of, detail, subject=label)
    if image_key not in image_ids:
        detail = f"{label} points at image id {image_key!r}, which is not in 'images'"
        return Problem("annotation without image", str(image_key), detail, subject=label)
    if category not in category_class:
        detail = f"{label}: category id {category!r} is not in 'categories'"
        return Problem("unknown class", str(image_key), detail, subject=f"#{category}")
    cls = category_class[category]
    if cls is None:
        name = category_name[category]
        detail = f"class {name!r} not in the class list"
        return Problem("unknown class", str(image_key), detail, subject=name)
    return image_key, ([x, y, x + w, y + h], cls, bool(ann.get("iscrowd", 0)))


def _record(img: dict, rows: list, image_dir: Path) -> DetectionRecord:
    file_name = img["file_name"]
    return DetectionRecord(
        Path(file_name).stem,
        image_dir / file_name,
        int(img.get("width", 0)),
        int(img.get("height", 0)),
        np.array([r[0] for r in rows], np.float32).reshape(-1, 4),
        [r[1] for r in rows],
        crowd=[r[2] for r in rows],
        source_id=int(img["id"]) if isinstance(img["id"], int) else None,
    )


def read_coco(
    annotation_file: str | Path,
    image_dir: str | Path | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Read a COCO JSON file.

    Boxes ``[x, y, w, h]`` become ``[x, y, x + w, y + h]``; ``iscrowd`` annotations are kept with their
    ``crowd`` flag set (the loader ignores them in training, evaluation ignores detections on them). Classes
    are the categories in id order unless ``class_names`` is given (then matched by name). Images default to
    the folder named like its ``instances_<set>`` suffix beside the JSON or its folder (``_default_image_dir``).

    Two categories of one name (or of one id), and two images of one id, are a ``DataError``: merging them
    would mislabel boxes. Annotations left out are reported as problems, each naming its annotation:
    ``unknown class`` (a category not in ``class_names``, subject its name, or an id not in ``categories``,
    subject ``#<id>``), ``annotation without image`` and ``bad annotation`` (no usable ``bbox`` ...).
    """
    annotation_file = Path(annotation_file)
    data = _load_json(annotation_file)
    categories = sorted(_checked_categories(annotation_file, data["categories"]), key=lambda c: c["id"])
    _check_images(annotation_file, data["images"])
    image_dir = (
        Path(image_dir) if image_dir is not None else _default_image_dir(annotation_file, data["images"])
    )
    names = [c["name"] for c in categories] if class_names is None else resolve_class_names(class_names, [])
    index = {name: i for i, name in enumerate(names)}
    category_class = {c["id"]: index.get(c["name"]) for c in categories}
    category_name = {c["id"]: c["name"] for c in categories}

    objects: dict[int, list] = {img["id"]: [] for img in data["images"]}
    problems = []
    for number, ann in enumerate(data["annotations"]):
        parsed = _parse_annotation(ann, number, category_class, category_name, objects)
        if isinstance(parsed, Problem):
            problems.append(parsed)
        else:
            objects[parsed[0]].append(parsed[1])

    records = [_record(img, objects[img["id"]], image_dir) for img in data["images"]]
    category_of_name = {c["name"]: c["id"] for c in categories}
    category_ids = [category_of_name.get(name) for name in names]
    return DetectionDataset(
        records,
        names,
        name=annotation_file.stem,
        problems=problems,
        category_ids=category_ids if all(isinstance(c, int) for c in category_ids) else None,
    )


def coco_splits(root: str | Path) -> list[str]:
    """The sets of ``<root>/annotations/instances_<set>.json`` (the standard COCO layout), sorted."""
    files = (Path(root) / "annotations").glob("instances_*.json")
    return sorted(p.stem.split("_", 1)[1] for p in files if p.is_file())


def recognises(source: str | Path) -> bool:
    """A ``.json`` file, or a COCO root: a folder whose ``annotations/`` holds ``instances_<set>.json``."""
    path = Path(source)
    return path.suffix == ".json" or (path.is_dir() and bool(coco_splits(path)))


def annotation_file_of(source: str | Path, split: str | None = None) -> Path:
    """The JSON that ``source`` names: the file itself (``split`` unused), or for a COCO root
    ``annotations/instances_<split>.json`` (without ``split``: the only one there). A root with several and
    no split is a ``ConfigError`` listing them; a split it lacks a ``FileNotFoundError`` listing them."""
    path = Path(source)
    if path.suffix == ".json" or not path.is_dir():
        return path
    splits = coco_splits(path)
    if split is None and len(splits) == 1:
        split = splits[0]
    if split is None:
        raise ConfigError(
            f"{path} holds the COCO splits {', '.join(splits)}: name one (--split NAME, train_split=NAME)"
        )
    json_path = path / "annotations" / f"instances_{split}.json"
    if not json_path.is_file():
        raise MissingSplitError(
            f"no split {split!r} in {path}: no annotations/instances_{split}.json (its splits: {', '.join(splits)})"
        )
    return json_path


def read_coco_source(
    source: str | Path, split: str | None = None, class_names: Sequence[str] | str | Path | None = None
) -> DetectionDataset:
    """:func:`read_coco` of a COCO JSON, or of a COCO root's ``split`` (:func:`annotation_file_of`)."""
    return read_coco(annotation_file_of(source, split), class_names=class_names)


def write_coco(
    dataset: DetectionDataset, annotation_file: str | Path, image_dir: str | Path | None = None
) -> Path:
    """Write ``dataset`` as COCO JSON: categories 1..C in class order and images 1..N, or the ids the dataset
    came with (read from COCO); images placed in ``image_dir``."""
    from multibox.data.formats.export_images import place_image, replace_file

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
    replace_file(annotation_file).write_text(json.dumps(content), encoding="utf-8")
    return annotation_file
