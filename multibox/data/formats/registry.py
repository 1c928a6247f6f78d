"""The table of dataset formats: how each is recognised, read, written, and where its writer puts files.

``load_dataset``, ``save_dataset``, ``multibox data check/convert`` and the command line's choices all read
this table; adding a format is one module with a reader (and a writer) plus one :func:`register_format` call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from multibox.data.formats.classes import resolve_class_names
from multibox.data.formats.coco import read_coco_source, write_coco
from multibox.data.formats.coco import recognises as _is_coco
from multibox.data.formats.lst import read_lst, write_lst
from multibox.data.formats.recordio import read_recordio_source, recordio_paths, write_recordio_target
from multibox.data.formats.recordio import recognises as _is_recordio
from multibox.data.formats.synthetic import SHAPE_CLASSES, make_shapes
from multibox.data.formats.targets import WrittenPaths
from multibox.data.formats.ultralytics import read_ultralytics_yaml
from multibox.data.formats.ultralytics import recognises as _is_ultralytics_yaml
from multibox.data.formats.voc import read_voc, write_voc
from multibox.data.formats.yolo import read_yolo, write_yolo
from multibox.data.records import DetectionDataset
from multibox.errors import ConfigError, MissingSplitError

ClassNames = Sequence[str] | str | Path | None


@dataclass(frozen=True)
class DatasetFormat:
    """One dataset format.

    Attributes:
        name: what ``--format`` / ``--to`` call it.
        description: what a source of this format is, for help texts and errors.
        read: ``(source, split, class_names) -> DetectionDataset``.
        recognises: ``(source) -> bool``, tried in table order to detect the format of a source.
        write: ``(dataset, target, split) -> written path``, or None for a read-only format.
        written_paths: ``(target, split, generated_images) -> WrittenPaths`` that ``write`` writes into.
    """

    name: str
    description: str
    read: Callable[[str | Path, str | None, ClassNames], DetectionDataset]
    recognises: Callable[[str | Path], bool]
    write: Callable[[DetectionDataset, Path, str], Path] | None = None
    written_paths: Callable[[Path, str, bool], WrittenPaths] | None = None


FORMATS: dict[str, DatasetFormat] = {}


def register_format(dataset_format: DatasetFormat) -> None:
    """Add (or replace) a format in the table."""
    FORMATS[dataset_format.name] = dataset_format


def readable_formats() -> tuple[str, ...]:
    return tuple(FORMATS)


def writable_formats() -> tuple[str, ...]:
    return tuple(name for name, f in FORMATS.items() if f.write is not None)


def get_format(name: str, writing: bool = False) -> DatasetFormat:
    """The format called ``name``; a :class:`ConfigError` listing the choices for an unknown one."""
    choices = writable_formats() if writing else readable_formats()
    if name not in choices:
        verb = "write" if writing else "read"
        raise ConfigError(f"cannot {verb} dataset format {name!r}; choose from {', '.join(choices)}")
    return FORMATS[name]


def written_paths(
    target: str | Path, format: str, split: str = "all", generated_images: bool = True
) -> WrittenPaths:
    """What ``save_dataset(dataset, target, format, split)`` writes, from the format's table entry; a
    ``.lst`` gets an ``images/`` folder next to it only for generated images."""
    return get_format(format, writing=True).written_paths(Path(target), split, generated_images)


# ---------------------------------------------------------------------------------------------- the formats
def _is_shapes(source: str | Path) -> bool:
    return str(source) == "shapes" or str(source).startswith("shapes:")


def _read_shapes(source: str | Path, split: str | None, class_names: ClassNames) -> DetectionDataset:
    """``shapes[:NUM_IMAGES[:SEED]]``; without a seed, ``train`` is seed 0, ``val`` 1, ``test`` 2."""
    parts = str(source).split(":")
    try:
        num_images = int(parts[1]) if len(parts) > 1 else 256
        seed = int(parts[2]) if len(parts) > 2 else {"val": 1, "test": 2}.get(split or "", 0)
    except ValueError:
        raise ConfigError(
            f"{source!r}: the synthetic set is shapes[:NUM_IMAGES[:SEED]], e.g. shapes:512"
        ) from None
    names = SHAPE_CLASSES if class_names is None else tuple(resolve_class_names(class_names, []))
    return make_shapes(num_images, seed=seed, class_names=names)


def _read_yolo(source: str | Path, split: str | None, class_names: ClassNames) -> DetectionDataset:
    path = Path(source)
    if (path / "images").is_dir():
        images = path / "images"
        path = images / split if split else images
        if split and not path.is_dir():
            splits = ", ".join(sorted(p.name for p in images.iterdir() if p.is_dir())) or "none"
            raise MissingSplitError(
                f"no split {split!r} in {source}: no images/{split}/ (its splits: {splits})"
            )
    return read_yolo(path, class_names)


def _is_yolo(source: str | Path) -> bool:
    path = Path(source)
    return path.is_dir() and ((path / "images").is_dir() or "images" in (path.name, path.parent.name))


def _write_coco(dataset: DetectionDataset, target: Path, split: str) -> Path:
    json_path = target if target.suffix == ".json" else target / "annotations" / f"instances_{split}.json"
    return write_coco(dataset, json_path, json_path.parent.parent / "images" / split)


def _coco_paths(target: Path, split: str, generated_images: bool) -> WrittenPaths:
    if target.suffix == ".json":
        return WrittenPaths([target.parent.parent / "images" / split], [target])
    return WrittenPaths([target, target / "annotations", target / "images", target / "images" / split])


def _write_lst(dataset: DetectionDataset, target: Path, split: str) -> Path:
    from dataclasses import replace

    from multibox.data.formats.export_images import place_image, replace_file

    lst_path = target if target.suffix == ".lst" else target / f"{split}.lst"
    if any(callable(r.image) for r in dataset.records):  # generated images need files for a list
        records = [replace(r, image=place_image(r, lst_path.parent / "images")) for r in dataset.records]
        dataset = replace(dataset, records=records)
    lst_path.parent.mkdir(parents=True, exist_ok=True)
    replace_file(lst_path.parent / "labels.txt").write_text("\n".join(dataset.class_names) + "\n")
    return write_lst(dataset, lst_path)


def _lst_paths(target: Path, split: str, generated_images: bool) -> WrittenPaths:
    if target.suffix == ".lst":
        folders = [target.parent / "images"] if generated_images else []
        return WrittenPaths(folders, [target, target.parent / "labels.txt"])
    return WrittenPaths([target, target / "images"])


def _folder_paths(*subfolders: str) -> Callable[[Path, str, bool], WrittenPaths]:
    return lambda target, split, generated: WrittenPaths([target] + [target / s for s in subfolders])


register_format(DatasetFormat("shapes", "shapes[:N[:SEED]] (synthetic)", _read_shapes, _is_shapes))
register_format(  # before any format that could claim a .yaml
    DatasetFormat(
        "ultralytics", "Ultralytics data.yaml (read-only)", read_ultralytics_yaml, _is_ultralytics_yaml
    )
)
register_format(
    DatasetFormat(
        "coco",
        "COCO JSON file, or a root with annotations/instances_<split>.json",
        read_coco_source,
        _is_coco,
        _write_coco,
        _coco_paths,
    )
)
register_format(
    DatasetFormat(
        "lst",
        "MXNet .lst file",
        lambda source, split, class_names: read_lst(source, class_names=class_names),
        lambda source: Path(source).suffix == ".lst",
        _write_lst,
        _lst_paths,
    )
)
register_format(
    DatasetFormat(
        "voc",
        "VOC folder (Annotations/, JPEGImages/)",
        read_voc,
        lambda source: Path(source).is_dir() and (Path(source) / "Annotations").is_dir(),
        lambda dataset, target, split: write_voc(dataset, target, split),
        _folder_paths("Annotations", "JPEGImages", "ImageSets", "ImageSets/Main"),
    )
)
register_format(
    DatasetFormat(
        "yolo",
        "YOLO folder (images/, labels/)",
        _read_yolo,
        _is_yolo,
        lambda dataset, target, split: write_yolo(dataset, target),
        _folder_paths("images", "labels"),
    )
)
register_format(  # after voc and yolo: a folder of theirs holding a .rec stays theirs
    DatasetFormat(
        "recordio",
        "MXNet .rec file (.idx beside it optional), or a folder of <split>.rec",
        read_recordio_source,
        _is_recordio,
        write_recordio_target,
        recordio_paths,
    )
)
