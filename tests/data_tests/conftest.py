"""Shared fixtures for the data tests: the real VOC-layout datasets live outside the project."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def datasets_root() -> Path:
    """``$MULTIBOX_DATASETS``, default ``<repo>/../shared/datasets``."""
    return Path(os.environ.get("MULTIBOX_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    root = datasets_root()
    if not (root / "bccd").is_dir():
        raise FileNotFoundError(f"datasets not found at {root}; set MULTIBOX_DATASETS")
    return root
