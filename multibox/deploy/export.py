"""``multibox export``: a training checkpoint -> one ONNX or TorchScript file + a JSON sidecar, checked."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from multibox.deploy.deployable import DeployableSSD
from multibox.deploy.formats import export_format
from multibox.deploy.parity import Agreement, compare_detections
from multibox.inference.checkpoint_model import load_checkpoint_model
from multibox.model.detection_settings import DetectionSettings
from multibox.version import __version__


@dataclass
class ExportResult:
    """The written files and the check of the file against the PyTorch model."""

    path: Path
    sidecar: Path
    metadata: dict
    check: Agreement


def _metadata(
    network: dict, class_names: list[str], data_shape, settings, fmt, dynamic_batch, batch_size
) -> dict:
    return {
        "multibox_version": __version__,
        "format": fmt,
        "network": network.get("name"),
        "class_names": list(class_names),
        "data_shape": [int(data_shape[0]), int(data_shape[1])],
        "batch_size": None if dynamic_batch else int(batch_size),
        "input": {
            "name": "images",
            "dtype": "uint8",
            "layout": "NCHW",
            "channels": "RGB",
            "size": "any height and width; resized (bilinear, antialiased) to data_shape inside",
        },
        "outputs": {
            "boxes": "(N, K, 4) float32 x1 y1 x2 y2, normalised to 0..1 (multiply by image width/height)",
            "scores": "(N, K) float32, descending; 0 on padding rows",
            "classes": "(N, K) int64, index into class_names; -1 on padding rows",
            "count": "(N,) int64, real rows per image (they come first)",
        },
        "detection": settings.to_dict(),
    }


def export_checkpoint(
    checkpoint: str | Path,
    format: str = "onnx",
    *,
    out: str | Path | None = None,
    data_shape: int | tuple[int, int] | None = None,
    dynamic_batch: bool = False,
    batch_size: int = 1,
    settings: DetectionSettings | dict | None = None,
) -> ExportResult:
    """Export a ``multibox train`` checkpoint with preprocessing, softmax, decoding and NMS inside.

    The file decodes with the checkpoint's detection settings, or ``settings`` (a dict changes only the
    settings it names; ``None`` values are left as the checkpoint has them).

    Writes ``out`` (default: next to the checkpoint, with the format's suffix, :mod:`multibox.deploy.formats`)
    and ``<out>.json``, then runs the file on a fixed random image batch and compares it with the same module
    in eager PyTorch (:attr:`ExportResult.check`).
    """
    chosen = export_format(format)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    model, class_names, network = load_checkpoint_model(checkpoint, "cpu")
    if isinstance(data_shape, int):
        data_shape = (data_shape, data_shape)
    if not isinstance(settings, DetectionSettings):
        settings = model.detection.updated(**(settings or {}))
    path = Path(out) if out else Path(checkpoint).with_suffix(chosen.suffixes[0])
    reference = DeployableSSD(model, settings, data_shape).eval()
    any_batch = dynamic_batch or chosen.any_batch
    metadata = _metadata(network, class_names, reference.data_shape, settings, format, any_batch, batch_size)
    chosen.write(reference, path, dynamic_batch, batch_size, metadata)
    runner = chosen.open(path, "cpu")
    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(metadata, indent=2) + "\n")
    return ExportResult(path, sidecar, metadata, _check(reference, runner, batch_size, any_batch))


def _check(reference: DeployableSSD, runner, batch_size: int, dynamic_batch: bool) -> Agreement:
    """The exported file against eager PyTorch on smooth random images of an odd size."""
    generator = torch.Generator().manual_seed(0)
    count = 3 if dynamic_batch else batch_size
    height, width = reference.data_shape
    coarse = torch.rand((count, 3, 6, 8), generator=generator)
    images = (
        torch.nn.functional.interpolate(coarse, size=(height + 21, width + 35), mode="bilinear") * 255
    ).to(torch.uint8)
    with torch.no_grad():
        boxes, scores, classes, _ = reference(images)
    expected = torch.cat([classes.unsqueeze(-1).float(), scores.unsqueeze(-1), boxes], dim=-1).numpy()
    return compare_detections(expected, runner.detect(images).numpy())
