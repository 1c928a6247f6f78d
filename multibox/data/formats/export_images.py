"""Placing a record's image into an output folder when converting between formats."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from multibox.data.records import DetectionRecord


def place_image(record: DetectionRecord, folder: Path, link: bool = True) -> Path:
    """Put the record's image into ``folder``: a symlink (or copy) for files, a JPEG for generated images."""
    folder.mkdir(parents=True, exist_ok=True)
    if callable(record.image):
        target = folder / f"{record.image_id}.jpg"
        if not target.exists():
            record.image().convert("RGB").save(target, quality=95)
        return target
    source = Path(record.image)
    target = folder / f"{record.image_id}{source.suffix}"
    if target.exists() or target.is_symlink():
        return target
    if link:
        os.symlink(source.resolve(), target)
    else:
        shutil.copy2(source, target)
    return target
