"""``first_batch.jpg``: the run's first training batch, augmented as the network sees it, with its boxes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from multibox.data.show import batch_grid
from multibox.engine.trainer import HookBase

FILENAME = "first_batch.jpg"


class BatchGridHook(HookBase):
    """Writes ``out_dir/first_batch.jpg`` from the first batch the run trains on (rank 0, once per run folder:
    a resumed run whose folder already holds the file leaves it alone).

    Training batches are uint8, the pixels themselves; ``mean`` / ``std`` / ``max_value`` are for a loader
    that gives normalised float batches (see :func:`multibox.data.show.denormalise`).
    """

    def __init__(
        self,
        out_dir: str | Path,
        class_names: Sequence[str],
        mean: Sequence[float] = (0.0, 0.0, 0.0),
        std: Sequence[float] = (1.0, 1.0, 1.0),
        max_value: float = 255.0,
        columns: int = 4,
        count: int | None = 16,
    ) -> None:
        self.path = Path(out_dir) / FILENAME
        self.class_names = list(class_names)
        self.mean, self.std, self.max_value = tuple(mean), tuple(std), max_value
        self.columns, self.count = columns, count
        self.done = False

    def before_step(self) -> None:
        if self.done:
            return
        self.done = True
        if self.trainer.dist.rank != 0 or self.path.exists():
            return
        batch = self.trainer.batch
        grid = batch_grid(
            batch.images,
            batch.labels,
            self.class_names,
            self.mean,
            self.std,
            self.columns,
            self.max_value,
            self.count,
        )
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".partial")
        grid.save(partial, format="JPEG", quality=90)
        partial.replace(self.path)
