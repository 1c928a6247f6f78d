"""Fifty clients at once against ``multibox serve`` running in its own process."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from tests.serve.serve_helpers import assert_answer_matches, expected_answer

CLIENTS = 50


def _memory_mib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def test_fifty_concurrent_requests_all_get_their_own_answer(live_server, checkpoint_model, bccd_images):
    net = checkpoint_model  # the expectation is computed without the server's code path
    uploads = {p.name: p.read_bytes() for p in bccd_images}
    expected = {name: expected_answer(net.model, net.data_shape, data, 0.3) for name, data in uploads.items()}
    names = [bccd_images[i % len(bccd_images)].name for i in range(CLIENTS)]
    names[7::10] = ["garbage.jpg"] * len(names[7::10])  # a few bad uploads among the good ones
    uploads["garbage.jpg"] = b"GIF89a? no, just bytes"
    try:  # restart the peak-memory count, so the peak below is the burst's
        Path(f"/proc/{live_server.pid}/clear_refs").write_text("5")
    except OSError:
        pass
    memory_before = _memory_mib(live_server.pid, "VmRSS")
    start = threading.Barrier(CLIENTS)

    def post(name: str) -> httpx.Response:
        with httpx.Client(base_url=live_server.url, timeout=120) as client:
            start.wait(timeout=30)  # every client fires at the same moment
            files = {"file": (name, uploads[name], "image/jpeg")}
            return client.post("/v1/detect", params={"threshold": 0.3}, files=files)

    with ThreadPoolExecutor(CLIENTS) as pool:
        responses = list(pool.map(post, names))

    for name, response in zip(names, responses, strict=True):
        if name == "garbage.jpg":
            assert response.status_code == 415, response.text
        else:
            assert response.status_code == 200, response.text
            assert_answer_matches(response.json(), expected[name], net.class_names)
    health = httpx.get(f"{live_server.url}/healthz").json()
    assert health["status"] == "ok" and health["pending"] == 0
    # One request at a time is decoded and run: the burst costs the server next to no memory.
    assert _memory_mib(live_server.pid, "VmHWM") - memory_before < 100
