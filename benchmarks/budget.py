"""Defaults only, at equal wall-clock budgets: ``multibox train train_data=DIR time_budget=B`` (nothing else)
against torchvision's SSDLite with its reference recipe, both scored on the dataset's ``test`` split with the
same VOC07 metric.

multibox runs as a user would, in a subprocess: ``multibox train train_data=DIR time_budget=B out_dir=...``
and then ``multibox evaluate`` of its last checkpoint on ``test``. The budget covers its whole run (training,
its own validation, checkpoints); the time printed is the subprocess's wall time. torchvision's
``ssdlite320_mobilenet_v3_large`` is trained with ``benchmarks/train_bccd.py``'s reference recipe (SGD, lr
0.15 x batch / 192, weight decay 4e-5, cosine over the epochs that fit, RandomIoUCrop + flips) from scratch:
its reference starts from ImageNet MobileNetV3 weights, which only a download gives and this machine cannot
reach; multibox's default uses the EfficientNet-Lite0 ImageNet weights that come with its ``lite0`` package.

    .venv/bin/python benchmarks/budget.py --data ../shared/datasets/bccd --budgets 300 900 1800 \
        [--only multibox|torchvision] [--out benchmarks/out/budget]

Prints one JSON line per run and appends it to ``<out>/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def run_multibox(data: str, budget: float, out: Path, settings: list[str] = ()) -> dict:
    """The defaults-only run (plus ``settings``, for experiments) and its test-split score."""
    tag = "_".join(s.replace("=", "-") for s in settings)
    run_dir = out / f"multibox_{Path(data).name}_{int(budget)}{'_' + tag if tag else ''}"
    command = [sys.executable, "-m", "multibox", "train", f"train_data={data}", f"time_budget={budget:g}"]
    command += list(settings)
    start = time.perf_counter()
    subprocess.run([*command, f"out_dir={run_dir}", "resume=none"], check=True, cwd=ROOT)
    seconds = time.perf_counter() - start
    checkpoints = sorted((run_dir / "checkpoints").glob("epoch_*.pt"))
    evaluation = subprocess.run(
        [sys.executable, "-m", "multibox", "evaluate", "--checkpoint", str(checkpoints[-1])]
        + ["--data", data, "--split", "test", "--out", str(run_dir / "test_evaluation")],
        check=True,
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    print(evaluation.stdout, file=sys.stderr)
    found = re.search(r"mAP VOC07 ([0-9.]+)\s+VOC area ([0-9.]+)", evaluation.stdout)
    return {
        "run": "multibox defaults" + "".join(f" {s}" for s in settings),
        "epochs": int(checkpoints[-1].stem.split("_")[1]),
        "seconds": round(seconds, 1),
        "mAP_voc07": float(found.group(1)),
        "mAP_area": float(found.group(2)),
    }


def run_torchvision(data: str, budget: float) -> dict:
    from benchmarks.train_bccd import run_torchvision as reference

    start = time.perf_counter()
    result = reference(data, budget, batch=16)
    return {
        "run": "torchvision ssdlite320 reference",
        **result,
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--budgets", type=float, nargs="+", default=[300.0, 900.0, 1800.0])
    parser.add_argument("--only", choices=("multibox", "torchvision"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "budget"))
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="KEY=VALUE", help="settings over the defaults"
    )
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for budget in args.budgets:
        runs = [args.only] if args.only else ["multibox", "torchvision"]
        for name in runs:
            result = (
                run_multibox(args.data, budget, out, args.set)
                if name == "multibox"
                else run_torchvision(args.data, budget)
            )
            line = json.dumps({"data": Path(args.data).name, "budget": budget, **result})
            print(line, flush=True)
            with (out / "results.jsonl").open("a") as file:
                file.write(line + "\n")


if __name__ == "__main__":
    main()
