"""Placing a record's image into an output folder when converting between formats."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from multibox.data.image_io import FORMAT_SUFFIXES, open_image
from multibox.data.records import DetectionRecord


def replace_file(path: Path) -> Path:
    """Remove what is at ``path`` (a file or a link, never what a link points to) so that the next write makes
    a new file: a link or hard link from a converted set back into its source is never written through."""
    if path.is_symlink() or path.is_file():
        path.unlink()
    return path


def place_image(record: DetectionRecord, folder: Path, link: bool = True) -> Path:
    """Put the record's image into ``folder``: a symlink (or copy) for files, the encoded bytes unchanged for
    images kept in a container (``read_bytes()``: a ``.rec`` record), a JPEG for generated images.

    An entry already there is kept only when it is this very image (the same file, or a link to it); any
    other entry of that name (a stale image of an earlier conversion) is replaced, never written through.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if callable(getattr(record.image, "read_bytes", None)) and callable(record.image):
        data = record.image.read_bytes()
        with open_image(data, name=str(record.image_id)) as image:
            suffixes = FORMAT_SUFFIXES.get(image.format)
        if suffixes is not None:
            target = replace_file(folder / f"{record.image_id}{suffixes[0]}")
            target.write_bytes(data)
            return target
    if callable(record.image):
        target = replace_file(folder / f"{record.image_id}.jpg")
        record.image().convert("RGB").save(target, quality=95)
        return target
    source = Path(record.image)
    target = folder / f"{record.image_id}{source.suffix}"
    if target.exists() and source.exists() and os.path.samefile(target, source):
        return target
    replace_file(target)
    if link:
        os.symlink(source.resolve(), target)
    else:
        shutil.copy2(source, target)
    return target
