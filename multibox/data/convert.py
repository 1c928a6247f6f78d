"""``multibox data convert``: read a dataset in one format and write it in another, never harming the source.

The target may not be the source, lie inside it or hold it (paths resolved, so symlinks and ``..`` count);
the source is its folder (VOC, YOLO) or its annotation file, ``labels.txt`` and the folders of its images
(COCO, ``.lst``). A target that already holds files is refused unless ``overwrite`` is given; then files of
the same name are replaced (as new files: a link back into the source is replaced, not written through) and
other files are kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from multibox.data.formats import detect_format, load_dataset, save_dataset
from multibox.data.formats.registry import written_paths
from multibox.data.formats.targets import image_folders, refuse_non_empty, refuse_overlap
from multibox.data.records import DetectionDataset
from multibox.data.validate import reading_losses, require_images


@dataclass
class Conversion:
    """What ``convert_dataset`` read and wrote."""

    dataset: DetectionDataset
    written: Path
    left_out: list[str]  # what reading left out (``reading_losses``), written nowhere

    def summary(self, format: str) -> str:
        line = f"wrote {len(self.dataset)} images, {self.dataset.num_objects} boxes as {format} to {self.written}"
        return "; ".join([line, *self.left_out])


def source_paths(source: str | Path, format: str, dataset: DetectionDataset) -> tuple[set[Path], set[Path]]:
    """The folders and files that belong to the source and must not be written: its folder (VOC, YOLO from
    the folder above ``images/``), or its file and the ``labels.txt`` beside an ``.lst`` or ``.rec`` (and a
    ``.rec``'s ``.idx``); and the folders of its images, where they are listed and where links lead."""
    folders, files = image_folders(dataset), set()
    if format == "shapes":
        return folders, files
    path = Path(source)
    if format == "yolo":
        parts = path.absolute().parts
        if "images" in parts:  # root/images/<split>: labels/ and classes.txt live beside images/
            path = Path(*parts[: len(parts) - 1 - parts[::-1].index("images")])
        folders.add(path)
    elif path.is_dir():
        folders.add(path)
    else:
        files.add(path)
        if format in ("lst", "recordio"):
            files.add(path.parent / "labels.txt")
        if format == "recordio":
            files.add(path.with_suffix(".idx"))
    return folders, files


def convert_dataset(
    source: str | Path,
    target: str | Path,
    to_format: str,
    split: str | None = None,
    format: str | None = None,
    class_names: Sequence[str] | str | Path | None = None,
    overwrite: bool = False,
) -> Conversion:
    """Read ``source`` and write it as ``to_format`` to ``target``.

    Raises ``ConfigError`` for a target that is, holds or lies inside the source, and for a non-empty target
    without ``overwrite``; ``DataError`` when the source has no image. Nothing is written then.
    """
    format = format or detect_format(source)
    dataset = load_dataset(source, split, format, class_names)
    generated = any(callable(r.image) for r in dataset.records)
    written = written_paths(target, to_format, split or "all", generated)
    folders, files = source_paths(source, format, dataset)
    refuse_overlap(written, folders, files, f"the source {source}", target)
    require_images(dataset, str(source))
    if not overwrite:
        refuse_non_empty(written, target)
    path = save_dataset(dataset, target, to_format, split or "all")
    return Conversion(dataset, path, reading_losses(dataset))
