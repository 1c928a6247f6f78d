"""Fixtures shared by all tests: the bccd subset kept in the repository, the full datasets when they are there, a
small detector trained on the subset, and the one rule for tests whose requirements are missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
BCCD_SUBSET = REPO_ROOT / "tests" / "fixtures" / "bccd_subset"
REQUIRE_ALL_TESTS = "MULTIBOX_REQUIRE_ALL_TESTS"


def require_or_skip(reason: str) -> None:
    """A test's requirement is missing: skip it with ``reason``, or fail with it when the environment variable
    ``MULTIBOX_REQUIRE_ALL_TESTS=1`` is set (CI sets it, so no test is ever skipped there)."""
    if os.environ.get(REQUIRE_ALL_TESTS) == "1":
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def datasets_root() -> Path:
    """``$MULTIBOX_DATASETS``, default ``<repo>/../shared/datasets``."""
    return Path(os.environ.get("MULTIBOX_DATASETS", REPO_ROOT.parent / "shared" / "datasets"))


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): a tiny
    network gains nothing from more, and leaves the other cores alone; the previous count is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    """The folder holding the FULL ``bccd/`` and ``cards/`` sets; tests that need them skip where it is absent."""
    root = datasets_root()
    missing = [name for name in ("bccd", "cards") if not (root / name).is_dir()]
    if missing:
        require_or_skip(
            f"full datasets ({', '.join(missing)}) not found at {root}: "
            "set MULTIBOX_DATASETS=<folder holding bccd/ and cards/> to run the full-set tests"
        )
    return root


@pytest.fixture(scope="session")
def bccd_subset() -> Path:
    """``tests/fixtures/bccd_subset``: 51 bccd train and 24 bccd test images in VOC layout (its SOURCE.md)."""
    assert (BCCD_SUBSET / "ImageSets" / "Main" / "train.txt").is_file(), f"{BCCD_SUBSET} is missing"
    return BCCD_SUBSET


@pytest.fixture(scope="session")
def bccd_checkpoint(bccd_subset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``tiny`` SSD at 160 px trained on the bccd subset's train split: 48 epochs of 3 batches of 16, the
    same 144 steps of 16 images as 12 epochs of the full train split (VOC07 mAP ~0.6 on the subset's test)."""
    from multibox.engine.quickstart import QUICKSTART
    from multibox.engine.train import train

    config = QUICKSTART.replace(
        train_data=str(bccd_subset),
        train_split="train",
        val_data=str(bccd_subset),
        val_split="test",
        data_shape=160,
        epochs=48,
        batch_size=16,
        lr=5e-3,
        val_interval=48,
        augmentation={"expand_prob": 0.0, "crop_prob": 0.0},
        num_workers=0,
        out_dir=str(tmp_path_factory.mktemp("bccd_tiny")),
    )
    result = train(config)
    assert result.final_metrics["mAP_voc07"] > 0.45, result.final_metrics
    return Path(result.checkpoint)
