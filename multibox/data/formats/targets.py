"""Where a writer puts its files, and the refusal to write over a dataset's own files.

``save_dataset`` refuses a target whose folders are, hold, or lie inside the folders of the dataset's
images; ``multibox data convert`` also protects the source's annotations and refuses a non-empty target
unless told to overwrite it. Paths are compared resolved (symlinks and ``..`` followed).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from multibox.data.records import DetectionDataset
from multibox.errors import ConfigError


@dataclass
class WrittenPaths:
    """The folders a writer writes into (everything under them may be replaced) and single files it writes."""

    folders: list[Path] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def image_folders(dataset: DetectionDataset) -> set[Path]:
    """The folders holding the dataset's image files: where they are listed and, for links, where they are."""
    folders = set()
    for record in dataset.records:
        if not callable(record.image):
            image = Path(record.image)
            folders.add(image.absolute().parent)
            folders.add(image.resolve().parent)
    return folders


def _shown(protected: Path, what: str) -> str:
    """`` (<resolved path>)`` unless ``what`` already says it."""
    return "" if what.endswith(str(protected)) else f" ({protected})"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def refuse_overlap(
    written: WrittenPaths,
    folders: Iterable[Path],
    files: Iterable[Path] = (),
    what: str = "the source",
    target: str | Path | None = None,
) -> None:
    """Raise ``ConfigError`` when writing ``written`` could replace or delete something in the protected
    ``folders`` or ``files``: a written folder that is, holds or lies in a protected folder, or holds a
    protected file, and a written file that lies in a protected folder or is a protected file."""
    shown = f"the target {target}" if target is not None else "the target"
    hint = "write the converted set to a new folder outside it"
    folders = sorted({Path(f).resolve() for f in folders})
    files = sorted({Path(f).resolve() for f in files})
    for file in (Path(f).resolve() for f in written.files):
        for protected in folders:
            if _inside(file, protected):
                raise ConfigError(f"{shown} is inside {what}{_shown(protected, what)}; {hint}")
        for protected in files:
            if file == protected:
                raise ConfigError(
                    f"{shown} would replace {what}{_shown(protected, what)}; choose another target"
                )

    for folder in (Path(f).resolve() for f in written.folders):
        for protected in folders:
            if folder == protected:
                raise ConfigError(f"{shown} is {what}{_shown(protected, what)}; {hint}")
            if _inside(folder, protected):
                raise ConfigError(f"{shown} is inside {what}{_shown(protected, what)}; {hint}")
            if _inside(protected, folder):
                raise ConfigError(f"{shown} holds {what}{_shown(protected, what)}; {hint}")
        for protected in files:
            if _inside(protected, folder):
                raise ConfigError(f"{shown} holds {what}{_shown(protected, what)}; {hint}")


def refuse_non_empty(written: WrittenPaths, target: str | Path) -> None:
    """Raise ``ConfigError`` when the target already holds files that writing would mix with or replace."""
    for file in written.files:
        if file.exists() or file.is_symlink():
            raise ConfigError(
                f"the target {target} would replace {file}, which exists; give a new name, or add --overwrite"
            )
    for folder in written.folders:
        if folder.is_dir() and any(folder.iterdir()):
            raise ConfigError(
                f"the target {target} is not empty ({folder} holds files); give an empty or new folder, or "
                "add --overwrite to write into it"
            )
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"the target {target} needs {folder} to be a folder, but it is a file")
