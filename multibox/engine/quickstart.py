"""``multibox quickstart``: generate the shapes dataset, train a small SSD on the CPU, evaluate, draw results."""

from __future__ import annotations

import json
import time
from pathlib import Path

from multibox.data import load_dataset
from multibox.data.show import image_grid
from multibox.engine.config import TrainConfig
from multibox.engine.train import train
from multibox.inference import detect_images
from multibox.viz import draw_detections

QUICKSTART = TrainConfig(
    train_data="shapes:1536",
    train_split="train",
    val_data="shapes:256",
    val_split="val",
    recipe="lite",
    network="tiny",
    data_shape=128,
    weights_backbone=None,
    lr=3e-3,
    warmup_epochs=0.5,
    epochs=24,  # the schedule's length, stretched over the time budget
    batch_size=32,
    augmentation={"crop_prob": 0.3},
    val_interval=1000,  # only at the end: the budget goes to training
    resume="none",
    tensorboard=False,
)


def run_quickstart(
    out_dir: str | Path = "runs/quickstart", time_budget: float | None = 170.0, **overrides
) -> dict:
    """Train the quick-start SSD into ``out_dir`` for ``time_budget`` seconds (its schedule ends inside them,
    however busy the machine; None: for its ``epochs``) and return a summary (mAP, timings, file paths)."""
    out_dir = Path(out_dir)
    config = QUICKSTART.replace(out_dir=str(out_dir), time_budget=time_budget, **overrides)
    start = time.perf_counter()
    result = train(config)
    seconds = time.perf_counter() - start

    val = load_dataset(config.val_data, config.val_split)
    samples = [val[i].open_image() for i in range(12)]
    detections = detect_images(result.model, samples, threshold=0.5)
    drawn = [
        draw_detections(image, d["boxes"], d["labels"], d["scores"], result.class_names, width=2)
        for image, d in zip(samples, detections, strict=True)
    ]
    folder = out_dir / "val_detections"
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(drawn):
        image.save(folder / f"{val[i].image_id}.jpg", quality=92)
    image_grid(drawn, 4).save(out_dir / "val_detections.jpg", quality=90)

    final = result.final_metrics
    summary = {
        "mAP_voc07": final.get("mAP_voc07"),
        "mAP_area": final.get("mAP_area"),
        "epochs": final.get("epoch"),
        "train_seconds": round(seconds, 1),
        "checkpoint": str(result.checkpoint),
        "out_dir": str(out_dir),
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
