"""Accuracy of the exported files: ONNX Runtime and TorchScript against the PyTorch model on a test set.

Exports the checkpoint to both formats (per-class decoding, the defaults of ``multibox export``), runs the
three paths on every test image and prints how their detections agree (count, box and score errors) and the
VOC07 / VOC area mAP of each.

    python benchmarks/deploy_accuracy.py [CHECKPOINT] [--data ../shared/datasets/bccd] [--split test]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from multibox.data import load_dataset, make_loader
from multibox.deploy import OnnxDetector, TorchScriptDetector, compare_detections, export_checkpoint
from multibox.engine.evaluate import evaluate
from multibox.inference import load_detector

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MULTIBOX_DATASETS", ROOT.parent / "shared" / "datasets"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", nargs="?", default=str(ROOT / "runs/bccd_lite0_320/checkpoints/best.pt")
    )
    parser.add_argument("--data", default=str(DATASETS / "bccd"))
    parser.add_argument("--split", default="test")
    args = parser.parse_args()

    model, class_names = load_detector(args.checkpoint)
    dataset = load_dataset(args.data, args.split, class_names=class_names)
    loader = make_loader(dataset, 8, train=False, data_shape=model.data_shape)
    with tempfile.TemporaryDirectory() as tmp:
        runners = {"pytorch": model}
        for fmt, cls in (("onnx", OnnxDetector), ("torchscript", TorchScriptDetector)):
            start = time.perf_counter()
            result = export_checkpoint(
                args.checkpoint, fmt, out=Path(tmp) / f"model.{fmt}", dynamic_batch=True
            )
            print(
                f"export {fmt}: {time.perf_counter() - start:.1f} s, {result.path.stat().st_size / 2**20:.1f} MB"
            )
            runners[fmt] = cls(result.path)
        detections = {}
        for name, runner in runners.items():
            with torch.no_grad():
                detections[name] = np.concatenate(
                    [runner.detect(x, per_class=True).numpy() for x, _ in loader]
                )
        rows = int((detections["pytorch"][..., 0] >= 0).sum())
        print(
            f"{len(dataset)} images of {args.data} ({args.split}), {rows} PyTorch detections (score >= 0.01)"
        )
        for name in ("onnx", "torchscript"):
            agreement = compare_detections(detections["pytorch"], detections[name], 1e-3, 1e-4)
            print(f"{name} vs pytorch: {agreement}")
        for name, runner in runners.items():
            result = evaluate(runner, loader, class_names)
            print(f"{name:<12} mAP VOC07 {result['mAP_voc07']:.4f}  VOC area {result['mAP_area']:.4f}")


if __name__ == "__main__":
    main()
