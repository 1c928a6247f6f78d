"""A checkpoint file of a model built in a test (random weights), as ``multibox train`` would save it."""

from __future__ import annotations

from pathlib import Path

import torch

from multibox.checkpoint import atomic_save, make_checkpoint, network_description


def save_model_checkpoint(
    model: torch.nn.Module, network: str, class_names: list[str], data_shape: int, path: Path
) -> str:
    """``model`` (an SSD of ``network`` at ``data_shape``, no network options) saved at ``path``."""
    described = network_description(network, len(class_names), data_shape, {})
    state = make_checkpoint(model.state_dict(), class_names, described, model.detection.to_dict())
    return str(atomic_save(state, path))
