"""Writing a :class:`DeployableSSD` as one TorchScript file that loads with plain ``torch.jit.load``."""

from __future__ import annotations

import copy
import json
import warnings
from pathlib import Path

import torch

from multibox.deploy.deployable import DeployableSSD
from multibox.errors import DataError

METADATA_FILE = "multibox.json"


def export_torchscript(deployable: DeployableSSD, path: str | Path, *, metadata: dict | None = None) -> Path:
    """Save ``deployable`` to ``path``: the network traced, the post-processing scripted (its NMS loop
    keeps its control flow), so any batch size and image size work. ``metadata`` is stored as the extra
    file ``multibox.json``. Loading needs only ``torch`` (no torchvision, no multibox)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    deployable = copy.deepcopy(deployable).eval().cpu()  # the post-processing is replaced by its script
    deployable.requires_grad_(False)  # an inference file: no autograd graph, whatever the caller's mode
    if type(deployable.postprocess).__name__ != "Postprocess":
        raise ValueError("TorchScript export needs a DeployableSSD built with onnx_nms=False")
    height, width = deployable.data_shape
    example = torch.randint(0, 256, (2, 3, height + 7, width + 13), dtype=torch.uint8)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer and deprecation notices
        deployable.postprocess = torch.jit.script(deployable.postprocess)
        traced = torch.jit.trace(deployable, (example,), check_trace=False)
        extra = {METADATA_FILE: json.dumps(metadata or {})}
        torch.jit.save(traced, str(path), _extra_files=extra)
    return path


def load_torchscript(path: str | Path) -> tuple[torch.jit.ScriptModule, dict]:
    """The module saved by :func:`export_torchscript` and its metadata."""
    extra = {METADATA_FILE: ""}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
            metadata = json.loads(extra[METADATA_FILE] or "{}")
        except (RuntimeError, ValueError) as error:  # not a TorchScript archive, or damaged metadata
            reason = " ".join(str(error).split())[:160]
            raise DataError(
                f"{path} is not a TorchScript file multibox can load ({reason}); export it with multibox export"
            ) from error
    return module.eval(), metadata
