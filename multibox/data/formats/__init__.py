"""Dataset formats: Pascal VOC, COCO JSON, YOLO txt, MXNet .lst and .rec, and the synthetic shapes set.

``load_dataset`` detects the format from the path; ``save_dataset`` writes any dataset in any format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from multibox.data.formats.coco import read_coco, write_coco
from multibox.data.formats.lst import read_lst, write_lst
from multibox.data.formats.recordio import read_recordio, write_recordio
from multibox.data.formats.registry import (
    FORMATS,
    DatasetFormat,
    get_format,
    readable_formats,
    register_format,
    writable_formats,
)
from multibox.data.formats.synthetic import SHAPE_CLASSES, make_shapes
from multibox.data.formats.voc import read_voc, write_voc
from multibox.data.formats.yolo import read_yolo, write_yolo
from multibox.data.records import DetectionDataset
from multibox.errors import ConfigError

__all__ = [
    "FORMATS",
    "SHAPE_CLASSES",
    "DatasetFormat",
    "detect_format",
    "get_format",
    "load_dataset",
    "make_shapes",
    "read_coco",
    "read_lst",
    "read_recordio",
    "read_voc",
    "read_yolo",
    "readable_formats",
    "register_format",
    "save_dataset",
    "writable_formats",
    "write_coco",
    "write_lst",
    "write_recordio",
    "write_voc",
    "write_yolo",
]


def detect_format(source: str | Path) -> str:
    """The first format of the table that recognises ``source``."""
    for name, dataset_format in FORMATS.items():
        if dataset_format.recognises(source):
            return name
    path = Path(source)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    kinds = "; ".join(f"{f.name}: {f.description}" for f in FORMATS.values())
    raise ConfigError(f"cannot tell the format of {path} ({kinds}); give it with --format")


def load_dataset(
    source: str | Path,
    split: str | None = None,
    format: str | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Read a dataset in any format of the table (detected from ``source`` unless given).

    Args:
        source: a VOC folder, a COCO JSON (or a COCO root: ``annotations/instances_<split>.json``), a YOLO
            images folder (or its parent with ``images/<split>``), an Ultralytics ``data.yaml``, an ``.lst``
            file, an MXNet ``.rec`` (or a folder of ``<split>.rec``), or ``shapes[:NUM_IMAGES[:SEED]]``.
        split: VOC image set, COCO root set (``val2017``), the ``<split>.rec`` of a folder, or the YOLO /
            data.yaml / shapes sub-set (shapes: ``train`` seed 0, ``val`` 1, ``test`` 2).
    """
    return get_format(format or detect_format(source)).read(source, split, class_names)


def save_dataset(dataset: DetectionDataset, target: str | Path, format: str, split: str = "all") -> Path:
    """Write ``dataset`` in ``format`` (any writable format of the table) under ``target``.

    Refuses (``ConfigError``) a target whose folders are, hold or lie in a folder of the dataset's images, so
    a dataset is never written over itself; files of the same name in the target are replaced, never written
    through a link.
    """
    from multibox.data.formats.registry import written_paths
    from multibox.data.formats.targets import image_folders, refuse_overlap

    writer = get_format(format, writing=True)
    target = Path(target)
    generated = any(callable(r.image) for r in dataset.records)
    refuse_overlap(
        written_paths(target, format, split, generated),
        image_folders(dataset),
        (),
        "the dataset's images",
        target,
    )
    return writer.write(dataset, target, split)
