"""Pascal VOC: ``Annotations/<id>.xml``, ``JPEGImages/<id>.jpg``, ``ImageSets/Main/<split>.txt``."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.formats.classes import resolve_class_names
from multibox.data.image_io import IMAGE_SUFFIXES
from multibox.data.records import DetectionDataset, DetectionRecord, Problem
from multibox.errors import MissingSplitError


def _text(node: ET.Element | None, tag: str, default: str = "") -> str:
    child = node.find(tag) if node is not None else None
    return child.text.strip() if child is not None and child.text else default


def _find_image(root: Path, image_id: str, filename: str) -> Path:
    images = root / "JPEGImages"
    if filename and (images / filename).is_file():
        return images / filename
    for suffix in (*IMAGE_SUFFIXES, *(s.upper() for s in IMAGE_SUFFIXES)):
        if (images / f"{image_id}{suffix}").is_file():
            return images / f"{image_id}{suffix}"
    return images / (filename or f"{image_id}.jpg")


def _parse_annotation(path: Path) -> tuple[str, int, int, list[tuple[str, list[float], bool]]]:
    tree = ET.parse(path).getroot()
    size = tree.find("size")
    width, height = int(float(_text(size, "width", "0"))), int(float(_text(size, "height", "0")))
    objects = []
    for obj in tree.iter("object"):
        box = obj.find("bndbox")
        coords = [float(_text(box, tag, "nan")) for tag in ("xmin", "ymin", "xmax", "ymax")]
        objects.append((_text(obj, "name"), coords, _text(obj, "difficult", "0") in ("1", "true")))
    return _text(tree, "filename"), width, height, objects


def voc_splits(root: str | Path) -> list[str]:
    """The image sets of ``root/ImageSets/Main/*.txt``, sorted, without VOC's per-class lists
    (``aeroplane_trainval.txt`` of the set ``trainval``)."""
    stems = sorted(p.stem for p in (Path(root) / "ImageSets" / "Main").glob("*.txt") if p.is_file())
    return [s for s in stems if not any(s.endswith("_" + other) for other in stems)]


def _splits_line(root: Path) -> str:
    splits = voc_splits(root)
    if splits:
        return "its splits: " + ", ".join(splits)
    return "it has no ImageSets/Main/<split>.txt lists"


def read_voc(
    root: str | Path,
    split: str | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Read a VOC-layout folder.

    Args:
        root: folder with ``Annotations/`` and ``JPEGImages/``.
        split: image-set name (``ImageSets/Main/<split>.txt``); ``None`` reads every annotation file.
        class_names: a list, a file with one name per line, or ``None`` for ``root/labels.txt`` when present,
            else the sorted names found. Objects of other classes are left out and reported as problems
            (``unknown class``); an annotation file that does not parse leaves its image out, reported as an
            ``unreadable annotation``.

    Coordinates are kept exactly as written (VOC's 1-based pixels, as the original divides them by the size).
    """
    root = Path(root)
    if not (root / "Annotations").is_dir():
        raise FileNotFoundError(f"{root} is not a VOC folder: no Annotations/ directory")
    if split is None:
        ids = sorted(p.stem for p in (root / "Annotations").glob("*.xml"))
    else:
        split_file = root / "ImageSets" / "Main" / f"{split}.txt"
        if not split_file.is_file():
            raise MissingSplitError(
                f"no split {split!r} in {root}: no {split_file.relative_to(root)} ({_splits_line(root)})"
            )
        ids = [line.split()[0] for line in split_file.read_text().splitlines() if line.strip()]

    parsed, problems = {}, []
    for image_id in ids:
        path = root / "Annotations" / f"{image_id}.xml"
        try:
            parsed[image_id] = _parse_annotation(path)
        except (OSError, ET.ParseError, ValueError) as error:
            problems.append(
                Problem("unreadable annotation", image_id, f"{path.name}: {error}", True, subject=path.name)
            )
    found = {name for _, _, _, objects in parsed.values() for name, _, _ in objects}
    names = resolve_class_names(class_names, found, root / "labels.txt")
    index = {name: i for i, name in enumerate(names)}

    records = []
    for image_id, (filename, width, height, objects) in parsed.items():
        boxes, labels, difficult = [], [], []
        for name, coords, is_difficult in objects:
            if name not in index:
                problems.append(
                    Problem("unknown class", image_id, f"class {name!r} not in the class list", subject=name)
                )
                continue
            boxes.append(coords)
            labels.append(index[name])
            difficult.append(is_difficult)
        records.append(
            DetectionRecord(
                image_id,
                _find_image(root, image_id, filename),
                width,
                height,
                np.array(boxes, np.float32).reshape(-1, 4),
                labels,
                difficult,
            )
        )
    name = root.name if split is None else f"{root.name}/{split}"
    return DetectionDataset(records, names, name=name, problems=problems)


def write_voc(
    dataset: DetectionDataset, root: str | Path, split: str = "all", link_images: bool = True
) -> Path:
    """Write ``dataset`` as a VOC folder: annotations, an image-set file, labels.txt, linked/copied images.

    Files of the same name already there are replaced (as new files, never written through a link); others
    are kept, so splits can be written one after another.
    """
    from multibox.data.formats.export_images import place_image, replace_file

    root = Path(root)
    (root / "Annotations").mkdir(parents=True, exist_ok=True)
    (root / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
    for record in dataset.records:
        image_path = place_image(record, root / "JPEGImages", link=link_images)
        ann = ET.Element("annotation")
        ET.SubElement(ann, "folder").text = "JPEGImages"
        ET.SubElement(ann, "filename").text = image_path.name
        size = ET.SubElement(ann, "size")
        for tag, value in (("width", record.width), ("height", record.height), ("depth", 3)):
            ET.SubElement(size, tag).text = str(value)
        for box, label, difficult in zip(record.boxes, record.labels, record.difficult, strict=True):
            obj = ET.SubElement(ann, "object")
            ET.SubElement(obj, "name").text = dataset.class_names[int(label)]
            ET.SubElement(obj, "difficult").text = str(int(difficult))
            bndbox = ET.SubElement(obj, "bndbox")
            for tag, value in zip(("xmin", "ymin", "xmax", "ymax"), box, strict=True):
                ET.SubElement(bndbox, tag).text = f"{float(value):g}"
        ET.indent(ann)
        xml_path = replace_file(root / "Annotations" / f"{record.image_id}.xml")
        ET.ElementTree(ann).write(xml_path, encoding="unicode")
    ids = "\n".join(r.image_id for r in dataset.records)
    replace_file(root / "ImageSets" / "Main" / f"{split}.txt").write_text(ids + "\n")
    replace_file(root / "labels.txt").write_text("\n".join(dataset.class_names) + "\n")
    return root
