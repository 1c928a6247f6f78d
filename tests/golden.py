"""Access to the MXNet 1.9.1 golden operator outputs stored in tests/fixtures/mxnet_golden."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GOLDEN_DIR = Path(__file__).parent / "fixtures" / "mxnet_golden"


def golden_files(kind: str) -> list[Path]:
    files = sorted(GOLDEN_DIR.glob(f"{kind}_*.npz"))
    assert files, f"no golden files for {kind} in {GOLDEN_DIR}"
    return files


def load_golden(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files if k != "params"}
        params = json.loads(str(z["params"]))
    return arrays, params
