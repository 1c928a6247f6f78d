"""Helpers of the serving tests: a real uvicorn server in a thread, crafted image bytes, answer checks."""

from __future__ import annotations

import io
import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import uvicorn
from fastapi import FastAPI
from PIL import Image, ImageOps


@contextmanager
def running(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free loopback port in a background thread; yields the base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raw_request(url: str, head: bytes, body: bytes = b"", timeout: float = 10.0) -> bytes:
    """Send ``head`` (request line and headers) and ``body`` over a plain socket; the raw answer."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` grey pixels but holds one row: a decompression-bomb header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    row = zlib.compress(b"\0" * (min(width, 4096) + 1))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", row) + chunk(b"IEND", b"")


@dataclass
class CheckpointModel:
    """The checkpoint's network loaded directly (no :class:`TorchDetector`), for expectations of the API."""

    model: torch.nn.Module
    class_names: list[str]
    data_shape: tuple[int, int]  # (height, width) of the network input


def expected_answer(
    model: torch.nn.Module, data_shape: tuple[int, int], data: bytes, threshold: float
) -> dict:
    """What ``POST /v1/detect`` must answer for the upload ``data``, computed without the server's code path.

    Pillow decodes the bytes (EXIF orientation applied) and force-resizes them bilinearly to the network input;
    the checkpoint's network detects with per-class decoding at ``threshold``; the normalised corners are scaled
    to the image's pixels here and the detections put best first (stable, so ties keep the network's order).
    """
    with Image.open(io.BytesIO(data)) as opened:
        image = ImageOps.exif_transpose(opened).convert("RGB")
    height, width = data_shape
    pixels = np.asarray(image.resize((width, height), Image.BILINEAR))  # (H, W, 3) uint8
    batch = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))[None]
    with torch.no_grad():
        rows = model.detect(batch, per_class=True, threshold=threshold)[0].double().numpy()
    rows = rows[(rows[:, 0] >= 0) & (rows[:, 1] >= threshold)]
    rows = rows[np.argsort(-rows[:, 1], kind="stable")]
    return {
        "width": image.width,
        "height": image.height,
        "class_ids": rows[:, 0].astype(int).tolist(),
        "scores": rows[:, 1],
        "boxes": rows[:, 2:6] * [image.width, image.height, image.width, image.height],
    }


def assert_answer_matches(answer: dict, expected: dict, class_names: list[str]) -> None:
    """The JSON ``answer`` holds the ``expected`` detections (from :func:`expected_answer`): the same classes in
    the same order, scores within 1e-4 (the JSON keeps 4 decimals), boxes within 1e-3 relative plus the 0.005 px
    of the JSON's 2-decimal rounding."""
    assert (answer["image"]["width"], answer["image"]["height"]) == (expected["width"], expected["height"])
    found = answer["detections"]
    assert [d["class_id"] for d in found] == expected["class_ids"]
    assert [d["class_name"] for d in found] == [class_names[k] for k in expected["class_ids"]]
    if not found:
        return
    np.testing.assert_allclose([d["score"] for d in found], expected["scores"], rtol=0, atol=1e-4)
    np.testing.assert_allclose([d["box"] for d in found], expected["boxes"], rtol=1e-3, atol=0.005 + 1e-6)


class FakeDetector:
    """A detector that finds one fixed box in every image, optionally waiting for ``release`` first."""

    class_names = ["cat", "dog"]

    def __init__(self, release: threading.Event | None = None) -> None:
        self.release = release
        self.started = threading.Event()

    def predict(self, images, threshold=0.5):
        self.started.set()
        if self.release is not None:
            self.release.wait(timeout=30)
        found = {
            "boxes": np.array([[1.0, 2.0, 3.0, 4.0]], np.float32),
            "scores": np.array([0.9], np.float32),
            "labels": np.array([1], np.int64),
        }
        keep = found["scores"] >= threshold
        return [{key: value[keep] for key, value in found.items()} for _ in images]
