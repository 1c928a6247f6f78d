"""Running an exported ONNX detector with ONNX Runtime (no PyTorch model code involved)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.deploy.exported_detector import ExportedDetector
from multibox.errors import DataError


class OnnxDetector(ExportedDetector):
    """A ``multibox export --format onnx`` file in ONNX Runtime, with the PyTorch model's ``detect()`` and
    the :class:`multibox.deploy.Detector` ``predict()``.

    Args:
        path: the ``.onnx`` file; its metadata (class names, input size, settings) travels inside it.
        providers: ONNX Runtime execution providers (default: CPU).
        threads: intra-op threads (default: ONNX Runtime's choice).
    """

    format = "ONNX"

    def __init__(
        self, path: str | Path, providers: Sequence[str] | None = None, threads: int | None = None
    ) -> None:
        try:
            import onnxruntime
        except ImportError as error:  # pragma: no cover - depends on the environment
            raise ImportError(
                "running ONNX files needs onnxruntime: pip install 'multibox[export]'"
            ) from error
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        options.log_severity_level = 3
        try:
            self.session = onnxruntime.InferenceSession(
                str(path), options, providers=list(providers or ["CPUExecutionProvider"])
            )
        except Exception as error:  # onnxruntime's own kinds (InvalidProtobuf, Fail, ...) on a bad file
            reason = " ".join(str(error).split())[:160]
            raise DataError(
                f"{path} is not an ONNX model ONNX Runtime can load ({reason}); export it with multibox export"
            ) from error
        text = self.session.get_modelmeta().custom_metadata_map.get("multibox")
        super().__init__(json.loads(text) if text else {})
        self.path = path
        self._input = self.session.get_inputs()[0].name

    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, classes, count = self.session.run(None, {self._input: images})
        return boxes, scores, classes, count
