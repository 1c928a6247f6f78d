"""Running an exported TorchScript detector."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from multibox.deploy.exported_detector import ExportedDetector
from multibox.deploy.torchscript_export import load_torchscript


class TorchScriptDetector(ExportedDetector):
    """A ``multibox export --format torchscript`` file, with the model's ``detect()`` and ``predict()``."""

    format = "TorchScript"

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        self.module, metadata = load_torchscript(path)
        self.device = torch.device(device)
        self.module.to(self.device)
        super().__init__(metadata)
        self.path = path

    @torch.no_grad()
    def run(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        outputs = self.module(torch.from_numpy(images).to(self.device))
        return tuple(out.cpu().numpy() for out in outputs)  # type: ignore[return-value]
