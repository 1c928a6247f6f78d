"""Ultralytics ``data.yaml``: a dataset root, the image sources of each split, and the class names.

The label files are YOLO txt (read as :mod:`multibox.data.formats.yolo` reads them). The yaml is only ever
read with ``yaml.safe_load``; nothing in it is run, and its ``download:`` is ignored (nothing is downloaded).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from multibox.data.formats.classes import resolve_class_names
from multibox.data.formats.yolo import _orphan_labels, _read_label_file, _yolo_record
from multibox.data.image_io import IMAGE_SUFFIXES
from multibox.data.records import DetectionDataset
from multibox.errors import ConfigError, DataError, MissingSplitError

SPLIT_KEYS = ("train", "val", "test")
SPLIT_ALIASES = {"valid": "val", "validation": "val"}
YAML_SUFFIXES = (".yaml", ".yml")


def _load_yaml(path: Path) -> dict:
    """The yaml's mapping; a :class:`DataError` naming the file for anything else."""
    import yaml

    try:
        content = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path} does not exist: give the path of the dataset's data.yaml") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path} cannot be read ({error}): check the file and its permissions") from error
    except yaml.YAMLError as error:
        where = getattr(error, "problem_mark", None)
        line = f" at line {where.line + 1}" if where is not None else ""
        raise DataError(f"{path} is not valid YAML{line}: fix the file's syntax") from error
    if not isinstance(content, dict):
        raise DataError(
            f"{path}: expected a mapping (path:, train:, val:, names: lines), found {type(content).__name__}"
        )
    return content


def recognises(source: str | Path) -> bool:
    """Whether ``source`` is a .yaml/.yml file whose mapping has ``names`` and a train, val or test key."""
    path = Path(source)
    if path.suffix.lower() not in YAML_SUFFIXES or not path.is_file():
        return False
    try:
        content = _load_yaml(path)
    except DataError:
        return False
    return "names" in content and any(key in content for key in SPLIT_KEYS)


def _yaml_names(path: Path, content: dict) -> list[str]:
    """``names`` as a list, or a dict ``{number: name}`` whose numbers must be exactly 0..N-1 (Ultralytics
    refuses others too; renumbering them would silently change what the label files mean)."""
    names = content.get("names")
    if isinstance(names, dict):
        try:
            numbered = {int(k): str(v) for k, v in names.items()}
        except (TypeError, ValueError):
            raise DataError(f"{path}: names keys must be class numbers, found {list(names)}") from None
        if sorted(numbered) != list(range(len(numbered))):
            raise DataError(
                f"{path}: names has class numbers {sorted(numbered)}; they must be 0..{len(numbered) - 1}: "
                "renumber names and the label files"
            )
        names = [numbered[i] for i in range(len(numbered))]
    elif isinstance(names, list):
        names = [str(name) for name in names]
    else:
        raise DataError(f"{path}: names must be a list of class names or a mapping {{0: name, ...}}")
    count = content.get("nc")
    if count is not None and count != len(names):
        raise DataError(f"{path}: nc is {count} but names lists {len(names)} classes; make them agree")
    try:
        return resolve_class_names(names, [])
    except ConfigError as error:
        raise DataError(f"{path}: {error}") from None


def _root(path: Path, content: dict) -> Path:
    """The dataset root: ``path`` (relative to the yaml's folder), default the yaml's folder."""
    given = content.get("path")
    if given in (None, ""):
        return path.parent
    if not isinstance(given, str | int | float):
        raise DataError(f"{path}: path must be a folder, found {given!r}")
    root = Path(str(given)).expanduser()
    root = root if root.is_absolute() else path.parent / root
    if not root.is_dir():
        raise DataError(
            f"{path}: path {given!r} is {root}, which is not a folder; set path: to the dataset root "
            f"(absolute, or relative to the yaml's folder){_download_hint(content)}"
        )
    return root


def _download_hint(content: dict) -> str:
    return " (this reader never downloads: fetch the dataset as its download: says)" * bool(
        content.get("download")
    )


def _split_keys(path: Path, content: dict, split: str | None) -> list[str]:
    """The yaml keys of ``split`` (``valid``/``validation`` mean ``val``; None: every split defined)."""
    defined = [key for key in SPLIT_KEYS if content.get(key) not in (None, "", [])]
    if split is None:
        return defined
    key = SPLIT_ALIASES.get(split, split)
    if key not in defined:
        raise MissingSplitError(
            f"{path} defines no split {split!r}; its splits: {', '.join(defined) or 'none'} "
            "(choose one with --split, or add the split to the yaml)"
        )
    return [key]


def _resolve(root: Path, text: str) -> Path:
    """A path of the yaml, relative to the root; ``../x`` that is not there is tried as ``x`` (Ultralytics)."""
    found = Path(text).expanduser()
    if found.is_absolute():
        return found
    if not (root / found).exists() and text.startswith("../"):
        return root / text[3:]
    return root / found


def _listed_images(listing: Path, root: Path) -> list[Path]:
    """The images of a .txt list: ``./x`` relative to the list's folder (Ultralytics), other relative paths
    to the root, absolute paths as they are."""
    images = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("./"):
            images.append(listing.parent / line[2:])
        else:
            images.append(_resolve(root, line))
    return images


def _entry_images(path: Path, root: Path, key: str, entry: Any, content: dict) -> tuple[list[Path], list]:
    """The images of one entry of a split (a folder, searched recursively, or a .txt list), and the problems
    (label files without an image) found beside a folder."""
    if not isinstance(entry, str | Path):
        raise DataError(f"{path}: {key}: entries must be folders or .txt lists, found {entry!r}")
    source = _resolve(root, str(entry))
    if source.is_dir():
        images = sorted(p for p in source.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        parts = list(source.parts)
        if "images" not in parts:
            return images, []
        parts[len(parts) - 1 - parts[::-1].index("images")] = "labels"
        return images, _orphan_labels(Path(*parts), images, source)
    if source.is_file() and source.suffix.lower() == ".txt":
        try:
            return _listed_images(source, root), []
        except (OSError, UnicodeDecodeError) as error:
            raise DataError(f"{path}: {key}: cannot read the list {source} ({error})") from error
    what = "is not a folder or a .txt list" if source.exists() else "does not exist"
    raise DataError(
        f"{path}: {key}: {entry!r} is {source}, which {what}; give a folder of images or a .txt list, "
        f"relative to {root}{_download_hint(content)}"
    )


def label_path(image: Path) -> Path:
    """The label file of an image: the last ``/images/`` of its path replaced by ``/labels/``, suffix .txt."""
    parts = list(image.parts)
    if "images" in parts[:-1]:
        parts[len(parts) - 2 - parts[-2::-1].index("images")] = "labels"
    return Path(*parts).with_suffix(".txt")


def _unique_ids(records: list, root: Path) -> None:
    """Keep file stems as image ids, except stems met twice: those get their path under the root."""
    stems = [r.image_id for r in records]
    for record in records:
        if stems.count(record.image_id) > 1:
            image = Path(record.image)
            relative = image.relative_to(root) if image.is_relative_to(root) else image
            record.image_id = "_".join(relative.with_suffix("").parts).lstrip("_")


def read_ultralytics_yaml(
    source: str | Path, split: str | None = None, class_names: Sequence[str] | str | Path | None = None
) -> DetectionDataset:
    """Read the split ``train``/``val``/``test`` of an Ultralytics ``data.yaml`` (None: every split defined).

    Each split is a folder of images (searched recursively), a .txt list of image paths, or a list of those,
    relative to ``path`` (the dataset root; relative to the yaml's folder, default that folder). An image
    without a label file has no boxes, as in Ultralytics. ``names`` (a list, or ``{0: name, ...}`` numbered
    exactly 0..N-1) gives the classes unless ``class_names`` is given. Image ids are file stems (the path
    under the root where stems repeat). Label problems are reported as :func:`read_yolo` reports them; a bad
    yaml, a missing folder or an undefined split (:class:`MissingSplitError`) is a :class:`DataError`.
    """
    path = Path(source)
    content = _load_yaml(path)
    names = _yaml_names(path, content) if class_names is None else resolve_class_names(class_names, [])
    root = _root(path, content)
    images, problems = [], []
    for key in _split_keys(path, content, split):
        entries = content[key] if isinstance(content[key], list) else [content[key]]
        for entry in entries:
            found, orphans = _entry_images(path, root, key, entry, content)
            images += found
            problems += orphans
    records = []
    for image in dict.fromkeys(images):  # each image once, in order
        label_file = label_path(image)
        rows = _read_label_file(label_file, image.stem, problems) if label_file.is_file() else []
        record = None if rows is None else _yolo_record(image, rows, names, problems)
        if record is not None:
            records.append(record)
    _unique_ids(records, root)
    name = root.resolve().name or path.stem
    name = f"{name}-{split}" if split else name
    return DetectionDataset(records, names, name=name, problems=problems)
