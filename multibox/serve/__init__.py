"""``multibox serve``: an HTTP API (``POST /v1/detect``) and a web page for a trained detector.

Needs the ``serve`` extra (FastAPI, uvicorn, python-multipart). This module imports none of them, so
:func:`missing_dependencies` can tell what to install; :func:`create_app` and :func:`run_server` load on use.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from multibox.serve.app import create_app
    from multibox.serve.server import run_server

__all__ = ["create_app", "missing_dependencies", "run_server"]

_REQUIRED = {
    "fastapi": ("fastapi",),
    "uvicorn": ("uvicorn",),
    "python-multipart": ("python_multipart", "multipart"),
}


def missing_dependencies() -> list[str]:
    """The distributions of the ``serve`` extra that are not installed."""
    return [
        name for name, modules in _REQUIRED.items() if not any(importlib.util.find_spec(m) for m in modules)
    ]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from multibox.serve.app import create_app

        return create_app
    if name == "run_server":
        from multibox.serve.server import run_server

        return run_server
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
