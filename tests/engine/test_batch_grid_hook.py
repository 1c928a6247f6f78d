"""``first_batch.jpg``: written from the run's first batch, on rank 0, once, and not again on resume."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch
from PIL import Image

from multibox.engine.batch_grid_hook import BatchGridHook
from multibox.engine.distributed import DistributedContext
from multibox.engine.trainer import Batch, Trainer
from multibox.viz import class_colour

NAMES = ["cat", "dog"]


class Sampler:
    def __init__(self, size: int) -> None:
        self.size = size

    def set_epoch(self, epoch: int) -> None: ...

    def __iter__(self):
        return iter([(i, 0) for i in range(self.size)])


class Loader:
    """Two batches of two uint8 ``(3, 64, 96)`` images per epoch: batch k is a flat grey of value 40 + 100 k,
    with one ``dog`` box in its first image."""

    batch_size = 2

    def __init__(self) -> None:
        self.sampler = Sampler(4)

    def __len__(self) -> int:
        return 2

    def __iter__(self):
        for k in range(2):
            images = torch.full((2, 3, 64, 96), 40 + 100 * k, dtype=torch.uint8)
            labels = torch.full((2, 1, 6), -1.0)
            labels[0, 0] = torch.tensor([1.0, 0.25, 0.25, 0.75, 0.75, 0.0])
            yield images, labels, torch.tensor([2 * k, 2 * k + 1])


class MeanLoss(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": (self.model(images.float().mean((1, 2, 3))[:, None] / 255) ** 2).mean()}


def _run(out_dir, epochs: int = 2) -> BatchGridHook:
    model = torch.nn.Linear(1, 1)
    hook = BatchGridHook(out_dir, NAMES)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    Trainer(model, MeanLoss(model), optimizer, Loader(), DistributedContext(), epochs, hooks=[hook]).train()
    return hook


def test_writes_the_first_batch_once(tmp_path):
    _run(tmp_path)
    path = tmp_path / "first_batch.jpg"
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["first_batch.jpg"]
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.size == (2 * 96, 64)
        pixels = np.asarray(image.convert("RGB")).astype(int)
    # the first batch (grey 40), not a later one (grey 140): away from the box, pixels stay near 40
    assert np.abs(pixels[:, 96 + 5 : 96 + 80] - 40).max() <= 8
    # the dog box of the first image, corners (24, 16)..(72, 48): its left edge in the dog colour (JPEG: roughly)
    assert np.abs(pixels[40, 24] - np.array(class_colour(1))).max() <= 40
    assert np.abs(pixels[40, 48] - 40).max() <= 8  # inside the box: the image


def test_a_resumed_run_leaves_the_existing_picture(tmp_path):
    path = tmp_path / "first_batch.jpg"
    Image.new("RGB", (8, 8), (255, 0, 0)).save(path)
    before = path.read_bytes()
    _run(tmp_path, epochs=1)
    assert path.read_bytes() == before


def test_only_rank_zero_writes_and_only_for_the_first_step(tmp_path):
    images = torch.zeros((1, 3, 16, 16), dtype=torch.uint8)
    labels = torch.full((1, 1, 6), -1.0)
    other = BatchGridHook(tmp_path / "rank1", NAMES)
    other.trainer = SimpleNamespace(dist=SimpleNamespace(rank=1), batch=Batch(images, labels, [0]))
    other.before_step()
    assert not (tmp_path / "rank1").exists()

    hook = BatchGridHook(tmp_path / "rank0", NAMES)
    hook.trainer = SimpleNamespace(dist=SimpleNamespace(rank=0), batch=Batch(images, labels, [0]))
    hook.before_step()
    path = tmp_path / "rank0" / "first_batch.jpg"
    first = path.read_bytes()
    path.unlink()
    hook.trainer.batch = Batch(images + 200, labels, [1])
    hook.before_step()
    assert not path.exists()  # later steps never write it again
    assert first[:3] == b"\xff\xd8\xff"
