"""INT8 against float32 in ONNX Runtime on the CPU: throughput and VOC07 mAP, for efficientnet_lite0 at 320 and
vgg16_reduced at 300.

Each checkpoint is exported as ``multibox export`` does (float ONNX, any batch size), then quantized as
``multibox export --int8`` does (QDQ, per-channel weights, calibrated on the first ``--calibration-images``
images of bccd train). Both files are scored on bccd test (VOC07 mAP, ``multibox evaluate``'s scoring) and timed
on bccd test photos at batch 1 and 8 (images per second, median of ``--repeats``, ``--threads`` intra-op
threads). Without a checkpoint a network gets random weights: its speed is real, its mAP is not.

    python benchmarks/quantize.py --lite0 runs/bccd_lite0_320/checkpoints/best.pt --vgg runs/vgg/best.pt
    python benchmarks/quantize.py --quick    # 2 calibration and 2 test images, 1 repeat: does it run?
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from multibox.checkpoint import atomic_save, make_checkpoint, network_description
from multibox.data import load_dataset, make_loader
from multibox.deploy import OnnxDetector, export_checkpoint
from multibox.deploy.calibration import CalibrationImages
from multibox.deploy.quantize import CALIBRATION_METHODS, quantize_int8
from multibox.engine.evaluate import evaluate
from multibox.model import build_ssd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MULTIBOX_DATASETS", ROOT.parent / "shared" / "datasets"))
MODELS = {"efficientnet_lite0": 320, "vgg16_reduced": 300}
BCCD_CLASSES = ["Platelets", "RBC", "WBC"]


def images_per_second(detector: OnnxDetector, batch, repeats: int) -> float:
    detector.run(batch)  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        detector.run(batch)
        times.append(time.perf_counter() - start)
    return len(batch) / statistics.median(times)


def random_checkpoint(name: str, size: int, folder: Path) -> Path:
    torch.manual_seed(0)
    model = build_ssd(name, len(BCCD_CLASSES), size)
    network = network_description(name, len(BCCD_CLASSES), size, {})
    state = make_checkpoint(model.state_dict(), BCCD_CLASSES, network, model.detection.to_dict())
    return atomic_save(state, folder / f"{name}_random.pt")


def bench_model(name: str, checkpoint: str | None, args, folder: Path) -> dict:
    size = MODELS[name]
    path = Path(checkpoint) if checkpoint else random_checkpoint(name, size, folder)
    float_file = export_checkpoint(path, "onnx", out=folder / f"{name}.onnx", dynamic_batch=True).path
    float_detector = OnnxDetector(float_file)
    class_names, network = float_detector.class_names, float_detector.metadata["network"]
    bccd = DATASETS / "bccd"
    train = load_dataset(bccd, "train", class_names=class_names).records[: args.calibration_images]
    test = load_dataset(bccd, "test", class_names=class_names)
    test.records = test.records[: args.test_images]
    start = time.perf_counter()
    int8_file = quantize_int8(
        float_file,
        folder / f"{name}.int8.onnx",
        CalibrationImages(train, (size, size)),
        method=args.calibration_method,
    )
    row = {"model": f"{network} {size}", "weights": "trained" if checkpoint else "random"}
    row["quantize_s"] = time.perf_counter() - start
    for label, file in (("float", float_file), ("int8", int8_file)):
        detector = OnnxDetector(file, threads=args.threads)
        loader = make_loader(test, 8, train=False, data_shape=(size, size), num_workers=0)
        row[f"{label}_map"] = evaluate(detector, loader, class_names)["mAP_voc07"]
        row[f"{label}_mb"] = file.stat().st_size / 2**20
        for batch in (1, 8):
            photos = CalibrationImages(test.records, (size, size), batch).batch(0)
            row[f"{label}_b{batch}"] = images_per_second(detector, photos, args.repeats)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lite0", help="efficientnet_lite0 320 checkpoint (default: random weights)")
    parser.add_argument(
        "--vgg", help="vgg16_reduced (or vgg16_reduced_bn) 300 checkpoint (default: random weights)"
    )
    parser.add_argument("--models", nargs="+", choices=tuple(MODELS), default=list(MODELS))
    parser.add_argument("--calibration-images", type=int, default=100)
    parser.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default="minmax")
    parser.add_argument("--test-images", type=int, default=None, help="default: all of bccd test")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="2 calibration and 2 test images, 1 repeat")
    args = parser.parse_args()
    if args.quick:
        args.calibration_images, args.test_images, args.repeats = 2, 2, 1
    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, onnxruntime "
        f"{__import__('onnxruntime').__version__}, {args.threads} intra-op threads, bccd at {DATASETS}, "
        f"{args.calibration_method} calibration on {args.calibration_images} images"
    )
    checkpoints = {"efficientnet_lite0": args.lite0, "vgg16_reduced": args.vgg}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench_model(name, checkpoints[name], args, Path(tmp)) for name in args.models]
    header = f"{'model':<26}{'weights':>8}{'batch':>6}{'float img/s':>13}{'int8 img/s':>12}{'speed-up':>10}"
    print(header)
    for row in rows:
        for batch in (1, 8):
            fast, slow = row[f"int8_b{batch}"], row[f"float_b{batch}"]
            print(
                f"{row['model']:<26}{row['weights']:>8}{batch:>6}{slow:>13.1f}{fast:>12.1f}{fast / slow:>9.2f}x"
            )
    print(
        f"{'model':<26}{'float mAP':>10}{'int8 mAP':>10}{'drop':>8}{'float MB':>10}{'int8 MB':>9}{'size':>7}"
    )
    for row in rows:
        print(
            f"{row['model']:<26}{row['float_map']:>10.4f}{row['int8_map']:>10.4f}"
            f"{row['float_map'] - row['int8_map']:>8.4f}{row['float_mb']:>10.1f}{row['int8_mb']:>9.1f}"
            f"{row['int8_mb'] / row['float_mb']:>6.2f}x  (quantized in {row['quantize_s']:.0f} s)"
        )


if __name__ == "__main__":
    main()
