"""Class-name lists: given, read from a file, or collected from the data."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from multibox.errors import ConfigError, DataError


def read_class_names(path: str | Path) -> list[str]:
    """One class name per line; blank lines and ``#`` comments ignored."""
    names = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            names.append(line)
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise DataError(f"{path}: class {', '.join(map(repr, twice))} listed twice; list each class once")
    return names


def resolve_class_names(
    class_names: Sequence[str] | str | Path | None, found: Iterable[str], default_file: Path | None = None
) -> list[str]:
    """Class list: the explicit list, a file, ``default_file`` if it exists, else sorted ``found``."""
    if isinstance(class_names, str | Path):
        return read_class_names(class_names)
    if class_names is not None:
        names = list(class_names)
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(
                f"class {', '.join(map(repr, twice))} listed twice in {names}; list each class once"
            )
        return names
    if default_file is not None and default_file.is_file():
        return read_class_names(default_file)
    return sorted(set(found))
