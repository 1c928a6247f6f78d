"""Loading a trained detector from a checkpoint and running it on image files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from multibox.model import build_ssd


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
    path = Path(checkpoint)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist")
    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict) or "model" not in state or "network" not in state:
        raise ValueError(f"{path} is not a multibox training checkpoint")
    network = state["network"]
    model = build_ssd(
        network["name"], network["num_classes"], network["data_shape"], **network.get("options", {})
    )
    model.load_state_dict(state["model"])
    return model.to(device).eval(), list(state["class_names"]), dict(network)


def read_image(path: str | Path) -> Image.Image:
    """An RGB image as displayed (EXIF orientation applied)."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def resize_for_network(images: Sequence[Image.Image], data_shape: tuple[int, int]) -> np.ndarray:
    """``(N, 3, H, W)`` uint8: each image made RGB and force-resized to ``data_shape`` with Pillow's bilinear
    filter, as the validation loader does."""
    height, width = data_shape
    resized = [
        np.asarray((im if im.mode == "RGB" else im.convert("RGB")).resize((width, height), Image.BILINEAR))
        for im in images
    ]
    return np.ascontiguousarray(np.stack(resized).transpose(0, 3, 1, 2))


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
        options = {"per_class": True, "threshold": threshold} | detect_options
        detections = model.detect(batch, **options).cpu().numpy()  # (B, K, 6)
        for im, det in zip(chunk, detections, strict=True):
            det = det[(det[:, 0] >= 0) & (det[:, 1] >= threshold)]
            scale = np.array([im.width, im.height, im.width, im.height], np.float32)
            results.append(
                {"boxes": det[:, 2:6] * scale, "scores": det[:, 1], "labels": det[:, 0].astype(np.int64)}
            )
    return results
