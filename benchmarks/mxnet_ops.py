"""Time MXNet 1.9.1's CPU MultiBoxTarget and MultiBoxDetection on inputs saved by ``benchmarks/ops.py``.

Runs inside ``benchmarks/.venv-mxnet`` (see ``setup_mxnet.sh``); needs only mxnet and numpy. For every
input ``X.npz`` it writes the operator outputs to ``X.mxnet.npz`` and prints one JSON object on stdout:
``{path: {"target": timing, "detection": timing}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import mxnet as mx
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _ops_timing import measure  # noqa: E402


def run_case(path: Path, args: argparse.Namespace) -> dict:
    data = np.load(path)
    params = json.loads(str(data["params"]))
    anchors = mx.nd.array(data["anchors"][None])
    labels = mx.nd.array(data["labels"])
    cls_logits = mx.nd.array(data["cls_logits"])
    cls_prob = mx.nd.array(data["cls_prob"])
    loc_pred = mx.nd.array(data["loc_pred"])
    tp, dp = params["target"], params["detection"]

    def target():
        return mx.nd.contrib.MultiBoxTarget(
            anchors,
            labels,
            cls_logits,
            overlap_threshold=tp["overlap_threshold"],
            ignore_label=tp["ignore_label"],
            negative_mining_ratio=tp["negative_mining_ratio"],
            negative_mining_thresh=tp["negative_mining_thresh"],
            minimum_negative_samples=tp["minimum_negative_samples"],
            variances=tuple(tp["variances"]),
        )

    def detection():
        return mx.nd.contrib.MultiBoxDetection(
            cls_prob,
            loc_pred,
            anchors,
            clip=dp["clip"],
            threshold=dp["threshold"],
            background_id=dp["background_id"],
            nms_threshold=dp["nms_threshold"],
            force_suppress=dp["force_suppress"],
            variances=tuple(dp["variances"]),
            nms_topk=dp["nms_topk"],
        )

    timing = {"warmup": args.warmup, "repeat": args.repeat, "max_seconds": args.max_seconds}
    timings = measure({"target": target, "detection": detection}, sync=mx.nd.waitall, **timing)
    result = {name: t.as_dict() for name, t in timings.items()}
    loc_target, loc_mask, cls_target = (x.asnumpy() for x in target())
    np.savez(
        path.with_suffix(".mxnet.npz"),
        loc_target=loc_target,
        loc_mask=loc_mask,
        cls_target=cls_target,
        detection=detection().asnumpy(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="npz files written by benchmarks/ops.py")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--max-seconds", type=float, default=60.0)
    args = parser.parse_args()
    results = {"mxnet_version": mx.__version__, "numpy_version": np.__version__, "cases": {}}
    for path in args.inputs:
        results["cases"][str(path)] = run_case(path, args)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
