"""Fine-tuning a trained detector against starting from the ImageNet backbone alone, at the same budget.

1. A source detector: EfficientNet-Lite0 SSDLite at 320 trained on the playing-cards set (ImageNet backbone).
2. Two runs on BCCD with the same recipe and number of epochs, evaluated on BCCD test after every epoch:
   (a) from the ImageNet backbone (``weights_backbone=imagenet``), (b) ``finetune=`` the cards detector (its
   backbone, extras, localisation heads and background row; BCCD's classes are all new to it).

Prints the two mAP curves, writes them to ``--out`` (JSON) and plots them (``--plot``).

    .venv/bin/python benchmarks/finetune.py [--source-epochs 10] [--epochs 6] [--datasets ../shared/datasets]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from multibox.engine.config import TrainConfig  # noqa: E402
from multibox.engine.train import train  # noqa: E402
from multibox.viz import plot_curves  # noqa: E402

RECIPE = dict(  # configs/bccd_lite0_320.yaml's recipe
    network="efficientnet_lite0",
    data_shape=320,
    optimizer="adamw",
    lr=0.002,
    weight_decay=0.0001,
    schedule="cosine",
    warmup_epochs=1,
    batch_size=16,
    freeze=None,
    augment="original",  # as recorded (before the light default); the augmentation is not what is compared
    ema=False,
    train_split="train",
    val_split="test",
    tensorboard=False,
)


def run(name: str, out_dir: Path, **settings) -> dict:
    started = time.perf_counter()
    result = train(TrainConfig(**{**RECIPE, **settings}, out_dir=str(out_dir / name)))
    curve = [(row["epoch"], row.get("mAP_voc07")) for row in result.history]
    return {
        "name": name,
        "curve": curve,
        "final": result.final_metrics.get("mAP_voc07"),
        "seconds": time.perf_counter() - started,
        "checkpoint": str(result.checkpoint),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--datasets", default=os.environ.get("MULTIBOX_DATASETS", str(ROOT.parent / "shared" / "datasets"))
    )
    parser.add_argument("--source-epochs", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "out" / "finetune"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "finetune.json"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "images" / "finetune_bccd.png"))
    args = parser.parse_args()
    work, data = Path(args.work), Path(args.datasets)
    source = run(
        "cards_source",
        work,
        train_data=str(data / "cards"),
        weights_backbone="imagenet",
        epochs=args.source_epochs,
        val_interval=args.source_epochs,
    )
    print(
        f"source detector (cards): VOC07 mAP {source['final']:.3f} in {source['seconds']:.0f} s", flush=True
    )
    bccd = dict(train_data=str(data / "bccd"), epochs=args.epochs, val_interval=1)
    imagenet = run("bccd_from_imagenet", work, weights_backbone="imagenet", **bccd)
    finetuned = run("bccd_finetuned_from_cards", work, finetune=source["checkpoint"], **bccd)
    print("epoch  from ImageNet backbone  fine-tuned from the cards detector")
    for (epoch, a), (_, b) in zip(imagenet["curve"], finetuned["curve"], strict=True):
        print(f"{epoch:5d}  {a:22.3f}  {b:34.3f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps({"source": source, "imagenet": imagenet, "finetuned": finetuned}, indent=1)
    )
    plot_curves(
        {
            "from the ImageNet backbone": imagenet["curve"],
            "fine-tuned from a cards detector": finetuned["curve"],
        },
        Path(args.plot),
        title="BCCD test VOC07 mAP per epoch (EfficientNet-Lite0 SSDLite 320)",
    )


if __name__ == "__main__":
    main()
