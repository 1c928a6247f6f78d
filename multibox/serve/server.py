"""``multibox serve``: open a detector file and serve it with uvicorn."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from multibox.deploy.formats import open_detector
from multibox.serve.app import create_app

LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def run_server(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    device: str = "cpu",
    max_upload_bytes: int = 20 * 2**20,
    max_pixels: int = 50_000_000,
    default_threshold: float | None = None,
    log_level: str = "info",
) -> None:
    """Serve the checkpoint or exported model at ``path`` until interrupted (loopback only by default)."""
    path = Path(path)
    detector = open_detector(path, device)
    app = create_app(
        detector,
        max_upload_bytes=max_upload_bytes,
        max_pixels=max_pixels,
        default_threshold=default_threshold,
        model_info={"name": path.name, "runtime": type(detector).__name__},
    )
    shown = f"[{host}]" if ":" in host else host
    print(
        f"multibox serve: {path.name} ({len(detector.class_names)} classes) on http://{shown}:{port}/",
        file=sys.stderr,
        flush=True,
    )
    if host not in LOOPBACK_HOSTS:
        print(
            f"multibox serve: listening on {host}, reachable from other machines: the API has no authentication",
            file=sys.stderr,
            flush=True,
        )
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5)
