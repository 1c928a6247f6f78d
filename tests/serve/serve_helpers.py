"""Helpers of the serving tests: a real uvicorn server in a thread, crafted image bytes, answer checks."""

from __future__ import annotations

import socket
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import uvicorn
from fastapi import FastAPI


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


def assert_same_detections(answer: dict, expected: dict, class_names: list[str]) -> None:
    """The JSON detections of ``answer`` are ``expected`` (a ``Detector.predict`` result), to JSON rounding."""
    found = answer["detections"]
    assert len(found) == len(expected["scores"]), (len(found), len(expected["scores"]))
    if not found:
        return
    np.testing.assert_allclose([d["box"] for d in found], expected["boxes"], atol=0.02)
    np.testing.assert_allclose([d["score"] for d in found], expected["scores"], atol=1e-4)
    assert [d["class_id"] for d in found] == expected["labels"].tolist()
    assert [d["class_name"] for d in found] == [class_names[k] for k in expected["labels"]]


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
