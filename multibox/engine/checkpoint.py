"""Checkpoints that survive crashes: atomic writes, automatic resume, last-K and best-by-metric retention."""

from __future__ import annotations

import os
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

_EPOCH_FILE = re.compile(r"^epoch_(\d+)\.pt$")


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


def rng_state() -> dict:
    """Python and torch (CPU and CUDA) random states. (Data order and augmentation need none: they derive
    from the seed and epoch, see ``SeededSampler``.)"""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Checkpointer:
    """Writes ``epoch_<N>.pt`` files into ``directory``, keeps the newest ``keep_last`` and ``best.pt``.

    ``save`` stores whatever state dict it is given (model, optimizer, scheduler, scaler, epoch, step, RNG,
    config, class names ...); ``latest()`` finds the newest complete checkpoint for ``--resume auto``.
    """

    def __init__(self, directory: str | Path, keep_last: int = 3):
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = keep_last

    def epoch_files(self) -> list[Path]:
        """Complete epoch checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.directory.iterdir() if (m := _EPOCH_FILE.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        files = self.epoch_files()
        return files[-1] if files else None

    def save(
        self, state: dict, epoch: int, metric: float | None = None, higher_is_better: bool = True
    ) -> Path:
        """Write ``epoch_<epoch>.pt`` (and ``best.pt`` when ``metric`` beats the best so far)."""
        path = atomic_save(state, self.directory / f"epoch_{epoch:04d}.pt")
        for old in self.epoch_files()[: -self.keep_last]:
            old.unlink(missing_ok=True)
        if metric is not None:
            best_file = self.directory / "best.json"
            best = None
            if best_file.is_file():
                best = float(best_file.read_text().split()[0])
            better = best is None or (metric > best if higher_is_better else metric < best)
            if better:
                atomic_save(state, self.directory / "best.pt")
                temporary = best_file.with_suffix(".tmp")
                temporary.write_text(f"{metric} {epoch}\n")
                os.replace(temporary, best_file)
        return path

    def load(self, path: str | Path | None = None, map_location: str | torch.device = "cpu") -> dict | None:
        """Load ``path``, or the newest epoch checkpoint when ``path`` is None (None if there is none)."""
        path = Path(path) if path is not None else self.latest()
        if path is None:
            return None
        return torch.load(path, map_location=map_location, weights_only=False)
