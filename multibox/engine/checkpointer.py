"""Epoch checkpoints of a training run (``epoch_<N>.pt``, the newest ``keep_last`` kept, ``best.pt``) and the
random state they carry. The file format itself is :mod:`multibox.checkpoint`'s."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path
from typing import Any

import torch

from multibox.checkpoint import atomic_save, read_checkpoint
from multibox.errors import ConfigError, DataError

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


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
        """Write ``state`` (a :func:`multibox.checkpoint.make_checkpoint` dict) as ``epoch_<epoch>.pt``, and as
        ``best.pt`` when ``metric`` beats the best so far."""
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
