"""Running a trained detector: checkpoint -> model, image files -> detections, the one :class:`Detector`
interface every runner offers, and the detections' one JSON form.

Sits below engine and deploy: imports errors, viz, checkpoint, model, data.image_io and ops, nothing higher.
"""

from multibox.inference.checkpoint_model import load_checkpoint_model, load_detector
from multibox.inference.detections import Detections, Detector, detections_to_json
from multibox.inference.images import detect_images, read_image
from multibox.inference.torch_detector import TorchDetector

__all__ = [
    "Detections",
    "Detector",
    "TorchDetector",
    "detect_images",
    "detections_to_json",
    "load_checkpoint_model",
    "load_detector",
    "read_image",
]
