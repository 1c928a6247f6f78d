"""The table of export formats: what each is called, its file suffixes, how it is written and what runs it.

``export_checkpoint``, :func:`open_detector` and the command line's ``--format`` choices all read this table.
It imports the writers and runners only when one is used, so building the command line stays light.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from multibox.errors import ConfigError

if TYPE_CHECKING:
    from multibox.deploy.deployable import DeployableSSD
    from multibox.deploy.exported_detector import ExportedDetector
    from multibox.inference.detections import Detector


@dataclass(frozen=True)
class ExportFormat:
    """One export format.

    Attributes:
        name: what ``--format`` calls it.
        suffixes: the file endings it is recognised by (lower case); the first is what export writes.
        runtime: what runs the file, for help texts.
        write: ``(reference, path, dynamic_batch, batch_size, metadata)`` writes ``reference`` (a
            :class:`DeployableSSD` with the torch NMS) to ``path``.
        open: ``(path, device, threads=None) -> ExportedDetector``, the runner of a written file; ``threads``
            is the intra-op thread count of a runtime with its own pool (ONNX Runtime; None: its choice).
        any_batch: the file takes any batch size even without ``dynamic_batch``.
    """

    name: str
    suffixes: tuple[str, ...]
    runtime: str
    write: Callable[[DeployableSSD, Path, bool, int, dict], None]
    open: Callable[..., ExportedDetector]
    any_batch: bool = False


def _write_onnx(reference: DeployableSSD, path: Path, dynamic_batch: bool, batch_size: int, metadata: dict):
    from multibox.deploy.deployable import DeployableSSD
    from multibox.deploy.onnx_export import export_onnx

    deployable = DeployableSSD(reference.network, reference.settings, reference.data_shape, onnx_nms=True)
    export_onnx(deployable, path, dynamic_batch=dynamic_batch, batch_size=batch_size, metadata=metadata)


def _open_onnx(path: Path, device: str | torch.device, threads: int | None = None) -> ExportedDetector:
    from multibox.deploy.onnx_detector import OnnxDetector

    return OnnxDetector(path, threads=threads)  # ONNX Runtime's CPU provider, whatever the device


def _write_torchscript(reference: DeployableSSD, path: Path, dynamic_batch: bool, batch_size: int, metadata):
    from multibox.deploy.torchscript_export import export_torchscript

    export_torchscript(reference, path, metadata=metadata)


def _open_torchscript(path: Path, device: str | torch.device, threads: int | None = None) -> ExportedDetector:
    from multibox.deploy.torchscript_detector import TorchScriptDetector

    return TorchScriptDetector(path, device)  # runs on torch's threads (torch.set_num_threads)


EXPORT_FORMATS: dict[str, ExportFormat] = {
    f.name: f
    for f in (
        ExportFormat("onnx", (".onnx",), "ONNX Runtime", _write_onnx, _open_onnx),
        ExportFormat(
            "torchscript",  # a traced module takes any batch size
            (".torchscript", ".ts"),
            "TorchScript",
            _write_torchscript,
            _open_torchscript,
            any_batch=True,
        ),
    )
}


def export_format(name: str) -> ExportFormat:
    """The format called ``name``; a :class:`ConfigError` listing the choices for an unknown one."""
    if name not in EXPORT_FORMATS:
        raise ConfigError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {name!r}")
    return EXPORT_FORMATS[name]


def format_of_file(path: str | Path) -> ExportFormat | None:
    """The export format that ``path``'s suffix names, or ``None`` (a training checkpoint)."""
    suffix = Path(path).suffix.lower()
    return next((f for f in EXPORT_FORMATS.values() if suffix in f.suffixes), None)


def open_detector(
    path: str | Path, device: str | torch.device = "cpu", threads: int | None = None
) -> Detector:
    """The detector stored in ``path``, by its suffix: an exported file in its runtime, anything else a
    ``multibox train`` checkpoint in PyTorch. ``threads``: ONNX Runtime's intra-op threads (default: its
    choice); PyTorch and TorchScript run on ``torch.get_num_threads()``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    exported = format_of_file(path)
    if exported is not None:
        return exported.open(path, device, threads=threads)
    from multibox.inference.torch_detector import TorchDetector

    return TorchDetector(path, device)
