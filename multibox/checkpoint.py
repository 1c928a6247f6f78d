"""The checkpoint format, owned here: written atomically, read safely (tensors and plain data only), validated.

A checkpoint is a dict with ``schema``, ``model`` (a state dict), ``class_names``, ``network``
(``{"name", "num_classes", "data_shape", "options"}``) and ``detection`` (the decoding settings); training adds
optimizer, scheduler, scaler, epoch, step, RNG state, config and history. :func:`read_checkpoint` is the one
reader that resume, inference, export and serve use; :func:`make_checkpoint` the one writer of its keys.
"""

from __future__ import annotations

import os
import pickle
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from multibox.errors import ConfigError, DataError

SCHEMA_VERSION = 1
_TEMPORARY_FILE = re.compile(r"^\..+\.tmp$")


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A crash or kill at any moment leaves either the previous file or the complete new one, never a torn file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def remove_stale_temporaries(directory: str | Path) -> list[Path]:
    """Delete the temporary files that saves killed midway left in ``directory``; returns what was deleted."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    stale = [p for p in directory.iterdir() if p.is_file() and _TEMPORARY_FILE.match(p.name)]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The checkpoint at ``path``, loaded with ``weights_only=True`` (no code in the file can run).

    Raises ``FileNotFoundError`` for a missing file and :class:`~multibox.errors.DataError` for a file that is
    truncated, corrupt, holds Python objects other than tensors and plain data, or is not a multibox
    checkpoint.
    """
    state = load_tensor_file(path, "checkpoint", map_location)
    _check_layout(state, Path(path))
    return state


def load_tensor_file(path: str | Path, what: str = "file", map_location: str | torch.device = "cpu") -> Any:
    """A file written by ``torch.save`` holding tensors and plain data only, read with ``weights_only=True``: the
    one ``torch.load`` of multibox (checkpoints, backbone weights, imported state dicts). ``what`` names the file
    in the one-line :class:`~multibox.errors.DataError` of a foreign, damaged or unsafe file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    with path.open("rb") as file:
        magic = file.read(4)
    if not (magic.startswith(b"PK\x03\x04") or magic.startswith(b"\x80")):  # zip archive or legacy pickle
        raise DataError(f"{what} {path} is not a file torch.save wrote (it starts with {magic!r})")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except MemoryError:
        raise
    except Exception as error:  # the unpickler raises many kinds on damaged bytes
        raise _unreadable(path, what, error) from error


def load_state_dict_file(path: str | Path, what: str) -> Mapping[str, torch.Tensor]:
    """The state dict in a weights file (:func:`load_tensor_file`), unwrapped from a ``{"model": ...}`` or
    ``{"state_dict": ...}`` checkpoint; a :class:`~multibox.errors.DataError` when it holds no mapping."""
    state = load_tensor_file(path, what)
    for key in ("model", "state_dict"):
        if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
            state = state[key]
    if not isinstance(state, Mapping):
        raise DataError(f"{what} {path} holds a {type(state).__name__}, not a state dict")
    return state


def _unreadable(path: Path, what: str, error: Exception) -> DataError:
    """The one-line error for a file that ``torch.load(weights_only=True)`` refused or could not read."""
    text = str(error).strip()
    if isinstance(error, pickle.UnpicklingError) and "weights only load failed" in text.lower():
        unsafe = next((line for line in text.splitlines() if "GLOBAL" in line), "an unsupported global")
        return DataError(
            f"refused to load {what} {path}: it holds Python objects other than tensors and plain data, which "
            f"could run code ({unsafe.strip()[:160]}); use a file of weights only"
        )
    return DataError(
        f"cannot read {what} {path}: the file is truncated or damaged ({type(error).__name__}); "
        "fetch or write it again"
    )


def _check_layout(state: Any, path: Path) -> None:
    if not isinstance(state, dict) or not {"model", "network", "class_names"} <= set(state):
        raise DataError(f"{path} is not a multibox training checkpoint (no model, network and class_names)")
    network = state["network"]
    if not isinstance(network, dict) or not {"name", "num_classes", "data_shape"} <= set(network):
        raise DataError(
            f"{path}: its network description is incomplete; it was not written by multibox train"
        )
    schema = state.get("schema", 1)
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise DataError(
            f"{path} has checkpoint schema {schema!r}, newer than this multibox reads ({SCHEMA_VERSION}): "
            "upgrade multibox"
        )


def network_description(network: str, num_classes: int, data_shape: int, options: dict) -> dict:
    """The ``network`` entry of a checkpoint: what :func:`multibox.model.build_ssd` needs to rebuild it."""
    return {"name": network, "num_classes": num_classes, "data_shape": data_shape, "options": dict(options)}


def check_resumable(state: dict, path: str | Path, class_names: list[str], network: dict) -> None:
    """Refuse, in one line, to resume ``state`` into a run of another network, classes, data_shape or options."""
    saved = state["network"]
    differences = []
    if saved.get("name") != network["name"]:
        differences.append(f"network {saved.get('name')} -> {network['name']}")
    if list(state["class_names"]) != list(class_names):
        differences.append(f"classes {list(state['class_names'])} -> {list(class_names)}")
    if saved.get("data_shape") != network["data_shape"]:
        differences.append(f"data_shape {saved.get('data_shape')} -> {network['data_shape']}")
    if dict(saved.get("options") or {}) != dict(network.get("options") or {}):
        differences.append(f"network_options {saved.get('options') or {}} -> {network.get('options') or {}}")
    if differences:
        raise ConfigError(
            f"cannot resume from {path}: it was trained with other settings ({'; '.join(differences)}); "
            "use another out_dir, or resume=none to start afresh"
        )


def make_checkpoint(
    model_state: dict, class_names: list[str], network: dict, detection: dict, **training: Any
) -> dict:
    """A checkpoint of the current schema: the weights, what rebuilds the network, the decoding settings, and
    whatever training state ``training`` holds (optimizer, scheduler, scaler, epoch, step, rng, config, history)."""
    return {
        "schema": SCHEMA_VERSION,
        "model": model_state,
        "class_names": list(class_names),
        "network": dict(network),
        "detection": dict(detection),
        **training,
    }


def detector_weights(state: dict) -> dict:
    """The weights a checkpoint detects with: the EMA of the weights where training found it better
    (``inference_weights == "ema"``, the ``ema`` entry training writes), else ``model``."""
    if state.get("inference_weights") == "ema" and isinstance(state.get("ema"), dict):
        return state["ema"]["model"]
    return state["model"]
