"""What a training run leaves beside its checkpoints: log.csv, loss.png / map.png, TensorBoard scalars."""

from __future__ import annotations

import csv
import os
import sys
from pathlib import Path


def log(message: str, rank: int = 0) -> None:
    """One line on stderr, from rank 0 only."""
    if rank == 0:
        print(message, file=sys.stderr, flush=True)


def write_csv(path: Path, rows: list[dict]) -> None:
    """The history as CSV, replaced atomically."""
    keys = list(dict.fromkeys(k for row in rows for k in row))
    temporary = path.with_suffix(".tmp")
    with temporary.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(temporary, path)


def plot_history(out_dir: Path, history: list[dict]) -> None:
    """loss.png (training losses) and, once there is one, map.png (validation mAP) per epoch."""
    from multibox.viz import plot_curves

    losses = {
        name: [(row["epoch"], row[name]) for row in history if name in row]
        for name in ("CrossEntropy", "SmoothL1")
    }
    plot_curves(losses, out_dir / "loss.png", title="training loss (epoch averages)")
    maps = {
        name: [(row["epoch"], row[name]) for row in history if row.get(name) is not None]
        for name in ("mAP_voc07", "mAP_area")
    }
    if any(maps.values()):
        plot_curves(maps, out_dir / "map.png", title="validation mAP")


class TensorBoardLog:
    """Scalars of each history row under ``out_dir/tensorboard``; says in one line when tensorboard is missing."""

    def __init__(self, out_dir: Path, enabled: bool) -> None:
        self.writer = None
        if not enabled:
            return
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            log("tensorboard logs skipped: the tensorboard package is missing (pip install tensorboard)")
            return
        self.writer = SummaryWriter(str(out_dir / "tensorboard"))

    def add_row(self, row: dict) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, int | float):
                self.writer.add_scalar(key, value, row["epoch"])
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
