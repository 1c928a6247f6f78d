"""Serve timings of MXNet 1.9.1's CPU MultiBoxTarget and MultiBoxDetection to ``benchmarks/ops.py``.

Runs inside ``benchmarks/.venv-mxnet`` (see ``setup_mxnet.sh``); needs only mxnet and numpy. For every
input ``X.npz`` (written by ops.py) it writes the operator outputs to ``X.mxnet.npz``, prints one JSON line
``{"mxnet_version": ..., "numpy_version": ...}``, then answers requests on stdin, one per line:
``INDEX OP`` (input number, ``target`` or ``detection``) runs that operator once and prints its wall time in
ms; ``quit`` (or end of input) stops. ops.py interleaves these requests with its own timed calls, so both
sides are measured in the same moments of a shared, noisy machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import mxnet as mx
import numpy as np


def load_case(path: Path) -> dict[str, Callable[[], object]]:
    """The two operators on the inputs of ``path``; writes their outputs next to it."""
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

    loc_target, loc_mask, cls_target = (x.asnumpy() for x in target())
    np.savez(
        path.with_suffix(".mxnet.npz"),
        loc_target=loc_target,
        loc_mask=loc_mask,
        cls_target=cls_target,
        detection=detection().asnumpy(),
    )
    return {"target": target, "detection": detection}


def timed_call(op: Callable[[], object]) -> float:
    """Wall time of one call in ms, waiting for MXNet's asynchronous engine before and after."""
    mx.nd.waitall()
    start = time.perf_counter()
    op()
    mx.nd.waitall()
    return (time.perf_counter() - start) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs", nargs="+", type=Path, help="npz files written by benchmarks/ops.py")
    args = parser.parse_args()
    cases = [load_case(path) for path in args.inputs]
    print(json.dumps({"mxnet_version": mx.__version__, "numpy_version": np.__version__}), flush=True)
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] == "quit":
            break
        print(f"{timed_call(cases[int(words[0])][words[1]]):.6f}", flush=True)


if __name__ == "__main__":
    main()
