"""Class-name lists: given, read from a file, or collected from the data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line; blank lines and ``#`` comments ignored."""
    names = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: duplicate class names")
    return names


def resolve_class_names(
    class_names: Sequence[str] | str | Path | None, found: Iterable[str], default_file: Path | None = None
) -> list[str]:
    """Class list: the explicit list, a file, ``default_file`` if it exists, else sorted ``found``."""
    if isinstance(class_names, str | Path):
        return read_class_names(class_names)
    if class_names is not None:
        names = list(class_names)
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate class names in {names}")
        return names
    if default_file is not None and default_file.is_file():
        return read_class_names(default_file)
    return sorted(set(found))
