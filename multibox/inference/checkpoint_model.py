"""A ``multibox train`` checkpoint -> the SSD it holds, in eval mode, decoding with its detection settings."""

from __future__ import annotations

from pathlib import Path

import torch

from multibox.checkpoint import detector_weights, read_checkpoint
from multibox.errors import DataError
from multibox.model import DetectionSettings, build_ssd


def load_detector(
    checkpoint: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, list[str]]:
    """The SSD saved by ``multibox train`` (any epoch or best checkpoint), in eval mode, and its class names."""
    model, class_names, _ = load_checkpoint_model(checkpoint, device)
    return model, class_names


def load_checkpoint_model(
    checkpoint: str | Path, device: str | torch.device = "cpu"
) -> tuple[torch.nn.Module, list[str], dict]:
    """As :func:`load_detector`, plus the checkpoint's network description ``{"name", "num_classes",
    "data_shape", "options"}``."""
    state = read_checkpoint(checkpoint)
    model = model_from_checkpoint(state, str(checkpoint))
    return model.to(device).eval(), list(state["class_names"]), dict(state["network"])


def model_from_checkpoint(state: dict, source: str = "the checkpoint") -> torch.nn.Module:
    """The SSD a checkpoint dict (:func:`multibox.checkpoint.make_checkpoint`) describes, with its weights and
    detection settings; a :class:`DataError` naming ``source`` when the weights do not fit."""
    network = state["network"]
    model = build_ssd(
        network["name"], network["num_classes"], network["data_shape"], **(network.get("options") or {})
    )
    try:
        model.load_state_dict(detector_weights(state))
    except RuntimeError as error:
        raise DataError(
            f"{source}: its weights do not fit a {network['name']} network of {network['num_classes']} "
            f"classes at {network['data_shape']} ({str(error).splitlines()[0][:200]}); the file is damaged"
        ) from error
    model.detection = DetectionSettings.from_dict(state.get("detection"))
    return model
