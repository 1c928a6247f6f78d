"""Deployment: exported model files (ONNX, TorchScript) and one detector interface for all of them.

Import the runners from here; ONNX Runtime is only imported when an :class:`OnnxDetector` is made.
"""

from multibox.deploy.deployable import DeployableSSD
from multibox.deploy.detector import Detections, Detector, TorchDetector, open_detector
from multibox.deploy.export import ExportResult, export_checkpoint
from multibox.deploy.onnx_detector import OnnxDetector
from multibox.deploy.parity import Agreement, compare_detections
from multibox.deploy.torchscript_detector import TorchScriptDetector
from multibox.model.detection_settings import DetectionSettings  # re-exported: export takes it

__all__ = [
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
