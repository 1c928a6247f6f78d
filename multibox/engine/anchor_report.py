"""A dataset's boxes against a network's anchors: the coverage report of ``multibox data anchors`` and the
fitted ``network_options`` of training's ``anchors=auto`` (:func:`fit_for_dataset`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multibox.data.records import DetectionDataset
from multibox.data.validate import clean_for_training
from multibox.errors import DataError
from multibox.model.anchor_fit import (
    AnchorFit,
    Coverage,
    anchor_coverage,
    fit_network_anchors,
    network_anchors,
)


@dataclass(frozen=True)
class DatasetBoxes:
    """The boxes of a dataset as arrays: ``boxes`` ``(N, 4)`` pixel corners, ``labels`` ``(N,)``,
    ``image_sizes`` ``(N, 2)`` ``(height, width)`` of each box's image, and the dataset's class names."""

    boxes: np.ndarray
    labels: np.ndarray
    image_sizes: np.ndarray
    class_names: list[str]

    def __len__(self) -> int:
        return len(self.labels)


def dataset_boxes(dataset: DetectionDataset) -> DatasetBoxes:
    """The boxes training would see: the training rule applied (:func:`clean_for_training`: clipped to the
    image, degenerate ones dropped), crowd regions left out. A ``DataError`` when none is left."""
    cleaned, _ = clean_for_training(dataset)
    boxes, labels, sizes = [], [], []
    for record in cleaned.records:  # one step per image; the boxes stay arrays
        keep = ~record.crowd
        boxes.append(record.boxes[keep])
        labels.append(record.labels[keep])
        sizes.append(np.tile(np.array([[record.height, record.width]], np.float32), (int(keep.sum()), 1)))
    total = sum(len(b) for b in boxes)
    if total == 0:
        raise DataError(
            f"{dataset.name or 'the dataset'} has no usable boxes ({len(dataset)} images); "
            "check the path, --split and --format (multibox data check shows what is wrong)"
        )
    return DatasetBoxes(
        np.concatenate(boxes).astype(np.float32),
        np.concatenate(labels).astype(np.int64),
        np.concatenate(sizes),
        list(dataset.class_names),
    )


@dataclass(frozen=True)
class AnchorReport:
    """What ``multibox data anchors`` prints: the coverage of the network's anchors and, with ``fit``, the
    fitted anchors (``fit.options`` are ``{}`` when fitting did not raise the coverage)."""

    network: str
    data_shape: int
    images: int
    coverage: Coverage
    fit: AnchorFit | None = None


def anchor_report(
    dataset: DetectionDataset,
    network: str = "vgg16_reduced",
    data_shape: int = 300,
    fit: bool = False,
    iou: float = 0.5,
    seed: int = 0,
) -> AnchorReport:
    """The anchor coverage of ``network`` at ``data_shape`` on ``dataset``; ``fit`` also fits anchors."""
    arrays = dataset_boxes(dataset)
    args = (arrays.boxes, arrays.labels, arrays.image_sizes)
    if fit:
        fitted = fit_network_anchors(*args, arrays.class_names, network, data_shape, iou=iou, seed=seed)
        return AnchorReport(network, int(data_shape), len(dataset), fitted.before, fitted)
    anchors, _ = network_anchors(network, data_shape)
    coverage = anchor_coverage(*args, anchors, arrays.class_names, iou, data_shape)
    return AnchorReport(network, int(data_shape), len(dataset), coverage)


def fit_for_dataset(
    dataset: DetectionDataset, network: str, data_shape: int, iou: float = 0.5, seed: int = 0
) -> dict[str, list[list[float]]]:
    """``network_options`` for ``anchors=auto``: ``{"sizes": [[...], ...], "ratios": [[...], ...]}`` fitted to
    ``dataset`` (same anchors per location as ``network``), or ``{}`` when the fit does not raise coverage."""
    arrays = dataset_boxes(dataset)
    fitted = fit_network_anchors(
        arrays.boxes,
        arrays.labels,
        arrays.image_sizes,
        arrays.class_names,
        network,
        data_shape,
        iou=iou,
        seed=seed,
    )
    return fitted.options
