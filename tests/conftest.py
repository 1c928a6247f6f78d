"""Fixtures shared by all tests: where the real datasets live, and a small detector trained on one of them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def datasets_root() -> Path:
    """``$MULTIBOX_DATASETS``, default ``<repo>/../shared/datasets``."""
    return Path(os.environ.get("MULTIBOX_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    root = datasets_root()
    if not (root / "bccd").is_dir():
        raise FileNotFoundError(f"datasets not found at {root}; set MULTIBOX_DATASETS")
    return root


@pytest.fixture(scope="session")
def bccd_checkpoint(datasets_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` SSD at 160 px trained 12 epochs on bccd/train (~25 s on 2 cores, VOC07 mAP ~0.65 on test)."""
    from multibox.engine.quickstart import QUICKSTART
    from multibox.engine.train import train

    config = QUICKSTART.replace(
        train_data=str(datasets_dir / "bccd"),
        train_split="train",
        val_data=str(datasets_dir / "bccd"),
        val_split="test",
        data_shape=160,
        epochs=12,
        batch_size=16,
        lr=5e-3,
        val_interval=12,
        augmentation={"expand_prob": 0.0, "crop_prob": 0.0},
        num_workers=0,
        out_dir=str(tmp_path_factory.mktemp("bccd_tiny")),
    )
    result = train(config)
    assert result.final_metrics["mAP_voc07"] > 0.4, result.final_metrics
    return Path(result.checkpoint)
