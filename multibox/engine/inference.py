"""Loading a trained detector from a checkpoint and running it on image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from multibox.data.image_io import read_rgb
from multibox.engine.checkpoint import read_checkpoint
from multibox.errors import DataError
from multibox.model import DetectionSettings, build_ssd
from multibox.model.resize import resize_for_network


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
    network = state["network"]
    model = build_ssd(
        network["name"], network["num_classes"], network["data_shape"], **(network.get("options") or {})
    )
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as error:
        raise DataError(
            f"{checkpoint}: its weights do not fit a {network['name']} network of {network['num_classes']} "
            f"classes at {network['data_shape']} ({str(error).splitlines()[0][:200]}); the file is damaged"
        ) from error
    model.detection = DetectionSettings.from_dict(state.get("detection"))
    return model.to(device).eval(), list(state["class_names"]), dict(network)


def read_image(path: str | Path, max_pixels: int | None = None) -> Image.Image:
    """An 8-bit RGB image as displayed (EXIF orientation applied), by :mod:`multibox.data.image_io`'s rules
    (pixel limit ``max_pixels``, default ``$MULTIBOX_MAX_MEGAPIXELS`` or 100 MP; 16-bit scaled; alpha dropped).

    Raises :class:`~multibox.data.image_io.ImageDecodeError` naming the file for anything it cannot decode.
    """
    return read_rgb(path, max_pixels=max_pixels, orient=True)


@torch.no_grad()
def detect_images(
    model: torch.nn.Module,
    images: Sequence[Image.Image],
    threshold: float = 0.5,
    batch_size: int = 8,
    device: str | torch.device = "cpu",
    **detect_options,
) -> list[dict[str, np.ndarray]]:
    """Detections per image in its own pixel coordinates: ``{"boxes" (K, 4), "scores" (K,), "labels" (K,)}``.

    Images are force-resized to the network input (as in training); ``threshold`` is the minimum score.
    """
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        batch = torch.from_numpy(resize_for_network(chunk, model.data_shape)).to(device)
        detections = (
            model.detect(batch, **({"threshold": threshold} | detect_options)).cpu().numpy()
        )  # (B, K, 6)
        for im, det in zip(chunk, detections, strict=True):
            det = det[(det[:, 0] >= 0) & (det[:, 1] >= threshold)]
            scale = np.array([im.width, im.height, im.width, im.height], np.float32)
            results.append(
                {"boxes": det[:, 2:6] * scale, "scores": det[:, 1], "labels": det[:, 0].astype(np.int64)}
            )
    return results
