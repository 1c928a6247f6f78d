"""The training-state file: written atomically, read safely (tensors and plain data only), checked on resume.

A checkpoint is a dict with at least ``schema``, ``model`` (a state dict), ``class_names`` and ``network``
(``{"name", "num_classes", "data_shape", "options"}``); training adds optimizer, scheduler, scaler, epoch,
step, RNG state, config and history. :func:`read_checkpoint` is the one reader every command uses.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from multibox.errors import ConfigError, DataError

SCHEMA_VERSION = 1
_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")
_TEMPORARY_FILE = re.compile(r"^\..+\.tmp$")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or kill at any moment leaves either the previous file or the complete new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that saves killed midway left in ``directory``; returns what was deleted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.is_file() and _TEMPORARY_FILE.match(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code in the file can run).

    Raises ``FileNotFoundError`` for a missing file and :class:`~multibox.errors.DataError` for a file that is
    truncated, corrupt, holds Python objects other than tensors and plain data, or is not a multibox
    checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    with path.open("rb") as file:
        magic = file.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):  # zip archive or legacy pickle
        raise DataError(
            f"{path} is not a PyTorch checkpoint (it starts with {magic!r}); use a file multibox wrote"
        )
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as error:  # the unpickler raises many kinds on damaged bytes
        raise _unreadable(path, error) from error
    _check_layout(state, path)
    return state


def _unreadable(path: Path, error: Exception) -> DataError:
    """The one-line error for a checkpoint that ``torch.load(weights_only=True)`` refused or could not read."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        unsafe = next((line for line in text.splitlines() if "GLOBAL" in line), "an unsupported global")
        return DataError(
            f"refused to load {path}: it holds Python objects other than tensors and plain data, which could "
            f"run code ({unsafe.strip()[:160]}); multibox checkpoints never do, so use a file multibox wrote"
        )
    return DataError(
        f"cannot read checkpoint {path}: the file is truncated or not a PyTorch checkpoint "
        f"({type(error).__name__}); use another checkpoint or train again"
    )


def _check_layout(state: Any, path: Path) -> None:
    if not isinstance(state, dict) or not {"model", "network", "class_names"} <= set(state):
        raise DataError(f"{path} is not a multibox training checkpoint (no model, network and class_names)")
    network = state["network"]
    if not isinstance(network, dict) or not {"name", "num_classes", "data_shape"} <= set(network):
        raise DataError(
            f"{path}: its network description is incomplete; it was not written by multibox train"
        )
    schema = state.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise DataError(
            f"{path} has checkpoint schema {schema!r}, newer than this multibox reads ({SCHEMA_VERSION}): "
            "upgrade multibox"
        )


def network_description(network: str, num_classes: int, data_shape: int, options: dict) -> dict:
    """The ``network`` entry of a checkpoint: what :func:`multibox.model.build_ssd` needs to rebuild it."""
    return {"name": network, "num_classes": num_classes, "data_shape": data_shape, "options": dict(options)}


def check_resumable(state: dict, path: str | Path, class_names: list[str], network: dict) -> None:
    """Refuse, in one line, to resume ``state`` into a run of another network, classes, data_shape or options."""
    saved = state["network"]
    differences = []
    if saved.get("name") != network["name"]:
        differences.append(f"network {saved.get('name')} -> {network['name']}")
    if list(state["class_names"]) != list(class_names):
        differences.append(f"classes {list(state['class_names'])} -> {list(class_names)}")
    if saved.get("data_shape") != network["data_shape"]:
        differences.append(f"data_shape {saved.get('data_shape')} -> {network['data_shape']}")
    if dict(saved.get("options") or {}) != dict(network.get("options") or {}):
        differences.append(f"network_options {saved.get('options') or {}} -> {network.get('options') or {}}")
    if differences:
        raise ConfigError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(differences)}); "
            "use another out_dir, or resume=none to start afresh"
        )


def rng_state() -> dict:
    """Python and torch (CPU and CUDA) random states. (Data order and augmentation need none: they derive
    from the seed and epoch, see ``SeededSampler``.)"""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_as_python_state(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_python_state(state: Any) -> tuple:
    """``random.setstate`` needs tuples; a state that went through another serialiser may hold lists."""
    version, internal, gauss = state
    return (version, tuple(internal), gauss)


class Checkpointer:
    """Writes ``epoch_<N>.pt`` files into ``directory``, keeps the newest ``keep_last`` and ``best.pt``."""

    def __init__(self, directory: str | Path, keep_last: int = 3):
        if keep_last < 1:
            raise ConfigError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def epoch_files(self) -> list[Path]:
        """Epoch checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _EPOCH_FILE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        files = self.epoch_files()
        return files[-1] if files else None

    def newest_readable(self) -> tuple[Path | None, dict | None, list[tuple[Path, str]]]:
        """The newest epoch checkpoint that loads and its state (``None, None`` when none does), plus the
        newer files skipped because they do not load, each with the reason."""
        skipped = []
        for path in reversed(self.epoch_files()):
            try:
                return path, read_checkpoint(path), skipped
            except DataError as error:
                skipped.append((path, str(error)))
        return None, None, skipped

    def save(
        self, state: dict, epoch: int, metric: float | None = None, higher_is_better: bool = True
    ) -> Path:
        """Write ``epoch_<epoch>.pt`` (and ``best.pt`` when ``metric`` beats the best so far)."""
        state = {"schema": SCHEMA_VERSION, **state}
        path = atomic_save(state, self.directory / f"epoch_{epoch:04d}.pt")
        for old in self.epoch_files()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        if metric is not None:
            best_file = self.directory / "best.json"
            best = _read_best(best_file)
            better = best is None or (metric > best if higher_is_better else metric < best)
            if better:
                atomic_save(state, self.directory / "best.pt")
                temporary = best_file.with_suffix(".tmp")
                temporary.write_text(f"{metric} {epoch}\n")
                os.replace(temporary, best_file)
        return path


def _read_best(best_file: Path) -> float | None:
    try:
        return float(best_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
