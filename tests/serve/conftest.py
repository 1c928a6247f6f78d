"""Fixtures of the serving tests: the detector trained on the bccd subset, its images, and ``multibox serve``
running for real."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from multibox.deploy import TorchDetector
from multibox.inference import load_checkpoint_model
from tests.serve.serve_helpers import CheckpointModel, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="package")
def detector(bccd_checkpoint: Path) -> TorchDetector:
    return TorchDetector(bccd_checkpoint)


@pytest.fixture(scope="package")
def checkpoint_model(bccd_checkpoint: Path) -> CheckpointModel:
    model, class_names, network = load_checkpoint_model(bccd_checkpoint, "cpu")
    shape = network["data_shape"]
    height, width = (shape, shape) if isinstance(shape, int) else shape
    return CheckpointModel(model.eval(), class_names, (int(height), int(width)))


@pytest.fixture(scope="package")
def bccd_images(bccd_subset: Path) -> list[Path]:
    """Five BCCD test-set photos of the subset (640x480 JPEG: red and white blood cells, platelets)."""
    names = (bccd_subset / "ImageSets" / "Main" / "test.txt").read_text().split()[:5]
    return [bccd_subset / "JPEGImages" / f"{name}.jpg" for name in names]


@dataclass
class LiveServer:
    url: str
    pid: int


@pytest.fixture(scope="package")
def live_server(bccd_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``python -m multibox serve CHECKPOINT --port P`` in a subprocess, as a user would start it."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("serve") / "server.log"
    command = [sys.executable, "-m", "multibox", "serve", str(bccd_checkpoint), "--port", str(port)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            command + ["--device", "cpu"], stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if process.poll() is not None:
                pytest.fail(f"multibox serve exited with {process.returncode}:\n{log_path.read_text()}")
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"multibox serve did not answer within 90 s:\n{log_path.read_text()}")
            time.sleep(0.2)
        yield LiveServer(url, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
