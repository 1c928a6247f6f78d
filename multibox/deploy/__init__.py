"""Deployment: exported model files (ONNX, TorchScript) and one detector interface for all of them.

Import the runners from here. Each name loads its module on first use, so reading the table of formats
(:mod:`multibox.deploy.formats`, for the command line's choices) loads no model code, and ONNX Runtime is only
imported when an :class:`OnnxDetector` is made.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multibox.deploy.deployable import DeployableSSD
    from multibox.deploy.export import ExportResult, export_checkpoint
    from multibox.deploy.formats import EXPORT_FORMATS, open_detector
    from multibox.deploy.onnx_detector import OnnxDetector
    from multibox.deploy.parity import Agreement, compare_detections
    from multibox.deploy.torchscript_detector import TorchScriptDetector
    from multibox.inference import Detections, Detector, TorchDetector
    from multibox.model.detection_settings import DetectionSettings  # export takes it

_MODULE_OF = {
    "Agreement": "multibox.deploy.parity",
    "DeployableSSD": "multibox.deploy.deployable",
    "DetectionSettings": "multibox.model.detection_settings",
    "Detections": "multibox.inference",
    "Detector": "multibox.inference",
    "EXPORT_FORMATS": "multibox.deploy.formats",
    "ExportResult": "multibox.deploy.export",
    "OnnxDetector": "multibox.deploy.onnx_detector",
    "TorchDetector": "multibox.inference",
    "TorchScriptDetector": "multibox.deploy.torchscript_detector",
    "compare_detections": "multibox.deploy.parity",
    "export_checkpoint": "multibox.deploy.export",
    "open_detector": "multibox.deploy.formats",
}
__all__ = [
    "EXPORT_FORMATS",
    "Agreement",
    "DeployableSSD",
    "DetectionSettings",
    "Detections",
    "Detector",
    "ExportResult",
    "OnnxDetector",
    "TorchDetector",
    "TorchScriptDetector",
    "compare_detections",
    "export_checkpoint",
    "open_detector",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_MODULE_OF[name]), name)
    globals()[name] = value  # loaded once
    return value
