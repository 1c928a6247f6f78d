"""Batches for training and evaluation: images ``(B, 3, H, W)`` and labels ``(B, M, 6)`` padded with -1."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from multibox.data.image_io import ImageDecodeError
from multibox.data.records import DetectionDataset

MEAN_PIXELS = (123.0, 117.0, 104.0)  # RGB means the original subtracts
Transform = Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


class SeededSampler(Sampler):
    """Yields ``(index, seed)`` pairs: the order and each sample's augmentation seed depend only on
    ``(seed, epoch)``, never on the number of workers, so runs are reproducible.

    With ``num_replicas > 1`` each rank takes every ``num_replicas``-th element of the shared order (the
    order is padded by wrapping so every rank gets the same number of samples), as DistributedSampler.
    """

    def __init__(self, size: int, shuffle: bool = True, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} outside 0..{num_replicas - 1}")
        self.size, self.shuffle, self.seed = size, shuffle, seed
        self.num_replicas, self.rank, self.epoch = num_replicas, rank, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-self.size // self.num_replicas)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.size) if self.shuffle else np.arange(self.size)
        seeds = rng.integers(0, 2**63 - 1, size=self.size)
        total = len(self) * self.num_replicas
        if total > self.size:
            order = np.concatenate([order, order[: total - self.size]])
        for position in range(self.rank, total, self.num_replicas):
            index = int(order[position])
            yield index, int(seeds[index])


class SkippedImage(NamedTuple):
    """The item of an image that could not be decoded: its dataset index, image id and the reason."""

    index: int
    image_id: str
    reason: str


class LoaderDataset(Dataset):
    """The torch ``Dataset`` :func:`make_loader` reads: decodes and transforms the records of a
    :class:`~multibox.data.records.DetectionDataset` into tensors.

    Items: ``image`` uint8 ``(3, H, W)`` and ``label`` float32 ``(K, 6)`` rows
    ``[cls, x1, y1, x2, y2, difficult]`` normalised to [0, 1], plus the dataset ``index`` with
    ``return_index``. Crowd boxes are left out unless ``keep_crowd``.

    An image that cannot be decoded is never replaced by another: it raises
    :class:`~multibox.data.image_io.ImageDecodeError`, or with ``skip_unreadable`` (what :func:`make_loader`
    uses) its item is a :class:`SkippedImage`, which :class:`Collate` drops from the batch and names on stderr.
    """

    def __init__(
        self,
        dataset: DetectionDataset,
        transform: Transform,
        keep_crowd: bool = False,
        skip_unreadable: bool = False,
        return_index: bool = False,
    ):
        self.dataset, self.transform, self.keep_crowd = dataset, transform, keep_crowd
        self.skip_unreadable, self.return_index = skip_unreadable, return_index

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item: int | tuple[int, int]) -> tuple | SkippedImage:
        index, seed = item if isinstance(item, tuple) else (item, item)
        record = self.dataset[index]
        try:
            image, label = self._load(record, np.random.default_rng(seed))
        except (ImageDecodeError, OSError) as error:  # OSError: Pillow, through a custom transform
            if not self.skip_unreadable:
                raise
            reason = error.reason if isinstance(error, ImageDecodeError) else " ".join(str(error).split())
            return SkippedImage(int(index), record.image_id, reason)
        return (image, label, int(index)) if self.return_index else (image, label)

    def _load(self, record, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        keep = np.ones(record.num_objects, bool) if self.keep_crowd else ~record.crowd
        with record.open_image() as image:
            size = (record.width, record.height) if record.width > 0 and record.height > 0 else None
            pixels, boxes, labels, difficult = self.transform(
                image, record.boxes[keep], record.labels[keep], record.difficult[keep], rng, size=size
            )
        label = np.concatenate(
            [
                labels[:, None].astype(np.float32),
                boxes.astype(np.float32),
                difficult[:, None].astype(np.float32),
            ],
            axis=1,
        ).reshape(-1, 6)
        image_tensor = torch.from_numpy(np.ascontiguousarray(pixels)).permute(2, 0, 1)  # (3, H, W) uint8
        return image_tensor, torch.from_numpy(label)


def pad_labels(labels: Sequence[torch.Tensor], max_objects: int | None = None) -> torch.Tensor:
    """Stack ``(K_i, 6)`` labels into ``(B, M, 6)`` padded with -1 rows; ``M = max(1, max K_i)`` or given."""
    size = max([1] + [len(label) for label in labels]) if max_objects is None else max_objects
    out = torch.full((len(labels), size, 6), -1.0)
    for i, label in enumerate(labels):
        out[i, : min(len(label), size)] = label[:size]
    return out


class Collate:
    """Batch ``(image, label)`` or ``(image, label, index)`` items: images uint8 ``(B, 3, H, W)`` (the model
    normalises them on the device; float ``(pixel - mean) / std`` with ``normalize=True``), labels
    ``(B, M, 6)`` padded with -1, and with ``return_indices`` the int64 ``(B,)`` dataset indices of the items.

    A :class:`SkippedImage` item is left out of the batch and named in one stderr line
    (``skipped unreadable image <id>: <reason>``); a batch of only skipped items gives 0 images
    (``(0, 3, H, W)`` with ``image_size=(H, W)``, labels ``(0, M, 6)``, indices ``(0,)``).
    """

    def __init__(
        self,
        mean: Sequence[float] = MEAN_PIXELS,
        std: Sequence[float] = (1.0, 1.0, 1.0),
        normalize: bool = False,
        max_objects: int | None = None,
        return_indices: bool = False,
        image_size: tuple[int, int] | None = None,
    ):
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.normalize, self.max_objects = normalize, max_objects
        self.return_indices, self.image_size = return_indices, image_size

    def __call__(self, batch: list) -> tuple[torch.Tensor, ...]:
        items = []
        for item in batch:
            if isinstance(item, SkippedImage):
                print(f"skipped unreadable image {item.image_id}: {item.reason}", file=sys.stderr, flush=True)
            else:
                items.append(item)
        if items:
            images = torch.stack([item[0] for item in items])  # (B, 3, H, W) uint8
        else:
            height, width = self.image_size or (0, 0)
            images = torch.zeros((0, 3, height, width), dtype=torch.uint8)
        if self.normalize:
            images = (images.float() - self.mean) / self.std
        labels = pad_labels([item[1] for item in items], self.max_objects)
        if not self.return_indices:
            return images, labels
        if any(len(item) < 3 for item in items):
            raise ValueError(
                "return_indices needs (image, label, index) items: LoaderDataset(return_index=True)"
            )
        return images, labels, torch.tensor([int(item[2]) for item in items], dtype=torch.int64)


def make_loader(
    dataset: DetectionDataset,
    batch_size: int = 32,
    train: bool = True,
    data_shape: int | tuple[int, int] = 300,
    transform: Transform | None = None,
    num_workers: int | None = None,
    seed: int = 0,
    mean: Sequence[float] = MEAN_PIXELS,
    std: Sequence[float] = (1.0, 1.0, 1.0),
    normalize: bool = False,
    drop_last: bool = False,
    num_replicas: int = 1,
    rank: int = 0,
    pin_memory: bool | None = None,
    return_indices: bool = False,
) -> DataLoader:
    """A DataLoader with the SSD training augmentation (``train``) or a plain resize (evaluation).

    Batches are ``(images, labels)``, or ``(images, labels, indices)`` with ``return_indices``: ``indices`` is
    the int64 ``(B,)`` tensor of the dataset indices of the images in the batch, in batch order. Images are
    uint8 (``SSD`` normalises on the device), or float ``(pixel - mean) / std`` with ``normalize=True``.

    An image that cannot be decoded (:class:`~multibox.data.image_io.ImageDecodeError`) is never replaced by
    another: it is left out of its batch, so that batch is smaller, and named in one stderr line
    ``skipped unreadable image <id>: <reason>``. A batch whose images all failed has 0 images (tensors of
    length 0); callers skip it. With ``return_indices`` the images a batch lacks are the sampler's indices
    for it that are missing from ``indices`` (evaluation names them; a trainer counts them).

    Workers default to the number of CPU cores (at most 8), persistent between epochs; memory is pinned
    when CUDA is available. Call ``loader.sampler.set_epoch(epoch)`` each epoch for a new, reproducible order.
    """
    from multibox.data.augment import TrainAugmentation, ValTransform

    shape = (data_shape, data_shape) if isinstance(data_shape, int) else tuple(data_shape)
    if transform is None:
        transform = TrainAugmentation(data_shape=shape) if train else ValTransform(data_shape=shape)
    if num_workers is None:
        num_workers = min(8, os.cpu_count() or 1)
    sampler = SeededSampler(len(dataset), shuffle=train, seed=seed, num_replicas=num_replicas, rank=rank)
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        LoaderDataset(dataset, transform, skip_unreadable=True, return_index=True),
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=Collate(mean, std, normalize, return_indices=return_indices, image_size=shape),
        pin_memory=torch.cuda.is_available() if pin_memory is None else pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
        generator=generator,
    )
