"""Deployment speed on the CPU: PyTorch eager vs the exported TorchScript and ONNX Runtime files, with
torchvision's matching SSD as the peer, all measured in one run.

For SSD300 ``vgg16_reduced`` (random weights, 20 classes; torchvision peer ``ssd300_vgg16``) and
``efficientnet_lite0`` at 320 (the bccd checkpoint in runs/bccd_lite0_320 when present, else random
weights; peer ``ssdlite320_mobilenet_v3_large``). Every path runs the whole job: uint8 images in, per-class
detections (score >= 0.01, NMS 0.45, 400 per class, 200 per image) out. Batch 1: median latency per image;
batch 8: images per second. Inputs are bccd photos resized to the network input.

    python benchmarks/deploy.py [--repeats 7] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision.models.detection import ssd300_vgg16, ssdlite320_mobilenet_v3_large

from multibox.deploy import OnnxDetector, TorchScriptDetector, export_checkpoint
from multibox.deploy.benchmark import cpu_model, time_calls
from multibox.inference import load_checkpoint_model
from multibox.model import build_ssd

ROOT = Path(__file__).resolve().parents[1]
DATASETS = Path(os.environ.get("MULTIBOX_DATASETS", ROOT.parent / "shared" / "datasets"))


def median_seconds(fn, repeats: int) -> float:
    return statistics.median(time_calls(fn, repeats, warmup=1))


def photos(size: int, count: int) -> torch.Tensor:
    """``(count, 3, size, size)`` uint8: bccd photos when the datasets are there, else smooth noise."""
    files = sorted((DATASETS / "bccd" / "JPEGImages").glob("*.jpg"))[:count]
    if len(files) == count:
        arrays = [
            np.asarray(Image.open(f).convert("RGB").resize((size, size), Image.BILINEAR)) for f in files
        ]
        return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    coarse = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    return (torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear") * 255).to(torch.uint8)


def checkpoint_for(name: str, size: int, folder: Path) -> Path:
    """A checkpoint file for the preset: the trained one when it exists, else random weights."""
    trained = ROOT / "runs" / "bccd_lite0_320" / "checkpoints" / "best.pt"
    if name == "efficientnet_lite0" and trained.is_file():
        return trained
    torch.manual_seed(0)
    model = build_ssd(name, 20, size)
    path = folder / f"{name}.pt"
    network = {"name": name, "num_classes": 20, "data_shape": size, "options": {}}
    torch.save(
        {"model": model.state_dict(), "network": network, "class_names": [str(i) for i in range(20)]}, path
    )
    return path


def bench_model(name: str, size: int, peer_factory, repeats: int, folder: Path) -> list[tuple]:
    checkpoint = checkpoint_for(name, size, folder)
    model, class_names, _ = load_checkpoint_model(checkpoint)
    onnx_file = export_checkpoint(checkpoint, "onnx", out=folder / f"{name}.onnx", dynamic_batch=True)
    ts_file = export_checkpoint(checkpoint, "torchscript", out=folder / f"{name}.torchscript")
    onnx_runner, ts_runner = OnnxDetector(onnx_file.path), TorchScriptDetector(ts_file.path)
    peer = peer_factory(weights=None, weights_backbone=None, num_classes=len(class_names) + 1).eval()
    rows = []
    for batch in (1, 8):
        images = photos(size, batch)
        as_numpy = images.numpy()
        floats = list(images.float().div(255.0))

        def eager(images=images):
            with torch.inference_mode():
                model.detect(images, per_class=True, threshold=0.01, nms_topk=400, max_detections=200)

        def torchscript(images=images):
            with torch.inference_mode():
                ts_runner.module(images)

        def onnxruntime(as_numpy=as_numpy):
            onnx_runner.run(as_numpy)

        def torchvision(floats=floats):
            with torch.inference_mode():
                peer(floats)

        seconds = {
            label: median_seconds(fn, repeats)
            for label, fn in [
                ("pytorch eager", eager),
                ("torchscript", torchscript),
                ("onnxruntime", onnxruntime),
                ("torchvision eager (peer)", torchvision),
            ]
        }
        for label, value in seconds.items():
            vs_peer = seconds["torchvision eager (peer)"] / value
            rows.append((name, batch, label, value, seconds["pytorch eager"] / value, vs_peer))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_model()}, torch {torch.__version__}, {args.threads} threads")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        rows += bench_model("vgg16_reduced", 300, ssd300_vgg16, args.repeats, Path(tmp))
        rows += bench_model("efficientnet_lite0", 320, ssdlite320_mobilenet_v3_large, args.repeats, Path(tmp))
    print(
        f"{'model':<20}{'batch':>6}  {'path':<26}{'ms/batch':>10}{'img/s':>9}{'vs eager':>10}{'vs peer':>9}"
    )
    for name, batch, label, seconds, vs_eager, vs_peer in rows:
        print(
            f"{name:<20}{batch:>6}  {label:<26}{seconds * 1000:>10.1f}{batch / seconds:>9.1f}"
            f"{vs_eager:>9.2f}x{vs_peer:>8.2f}x"
        )


if __name__ == "__main__":
    main()
