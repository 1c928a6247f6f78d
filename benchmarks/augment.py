"""Training-augmentation throughput: multibox against torchvision's transforms.v2 "ssd" preset, same images.

Per image, both sides: read + decode the JPEG, the full SSD training augmentation, resize to 300x300 and a
float ``(3, 300, 300)`` mean-subtracted tensor. multibox: ``TrainAugmentation`` (JPEG draft decoding, one
resize, uint8 colour tables). torchvision: ``decode_jpeg`` then RandomPhotometricDistort,
RandomZoomOut(fill=mean), RandomIoUCrop, RandomHorizontalFlip, Resize((300, 300)), SanitizeBoundingBoxes,
ToDtype(float32), minus the mean (the detection reference's "ssd" recipe).

    .venv/bin/python benchmarks/augment.py VOC_DIR [--threads 1] [--limit N] [--rounds 3]
    .venv/bin/python benchmarks/augment.py ../shared/datasets/bccd --make-large /tmp/bccd_large --limit 24

``--threads N`` runs N worker processes (one torch thread each) and reports images per second per core
(total / N). ``--make-large DIR`` first writes upsampled 4000x3000 JPEG copies of the VOC images (with
scaled annotations) to DIR and benchmarks those instead.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

MEAN = (123.0, 117.0, 104.0)
DATA_SHAPE = (300, 300)
LARGE_SIZE = (4000, 3000)


def read_voc_boxes(root: Path, limit: int | None = None) -> list[tuple[Path, np.ndarray, np.ndarray]]:
    """``(image path, (K, 4) float32 pixel boxes, (K,) int64 labels)`` of every annotation in ``root``."""
    items, names = [], {}
    for xml in sorted((root / "Annotations").glob("*.xml"))[:limit]:
        tree = ET.parse(xml).getroot()
        boxes, labels = [], []
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            boxes.append([float(bb.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax")])
            labels.append(names.setdefault(obj.find("name").text.strip(), len(names)))
        image = root / "JPEGImages" / tree.find("filename").text.strip()
        items.append((image, np.array(boxes, np.float32).reshape(-1, 4), np.array(labels, np.int64)))
    return items


def make_large(root: Path, out: Path, limit: int | None) -> Path:
    """Upsample VOC images to 4000x3000 JPEGs (quality 90) with scaled boxes, in VOC layout under ``out``."""
    (out / "JPEGImages").mkdir(parents=True, exist_ok=True)
    (out / "Annotations").mkdir(parents=True, exist_ok=True)
    for path, boxes, labels in read_voc_boxes(root, limit):
        image = Image.open(path).convert("RGB")
        sx, sy = LARGE_SIZE[0] / image.width, LARGE_SIZE[1] / image.height
        image.resize(LARGE_SIZE, Image.Resampling.BICUBIC).save(out / "JPEGImages" / path.name, quality=90)
        objects = "".join(
            f"<object><name>c{label}</name><difficult>0</difficult><bndbox><xmin>{b[0] * sx:.1f}</xmin>"
            f"<ymin>{b[1] * sy:.1f}</ymin><xmax>{b[2] * sx:.1f}</xmax><ymax>{b[3] * sy:.1f}</ymax></bndbox></object>"
            for b, label in zip(boxes, labels, strict=True)
        )
        xml = (
            f"<annotation><filename>{path.name}</filename><size><width>{LARGE_SIZE[0]}</width>"
            f"<height>{LARGE_SIZE[1]}</height><depth>3</depth></size>{objects}</annotation>"
        )
        (out / "Annotations" / (path.stem + ".xml")).write_text(xml)
    return out


def multibox_pipeline(colour_before_resize: bool = False):
    from multibox.data.augment import TrainAugmentation

    augment = TrainAugmentation(data_shape=DATA_SHAPE, colour_before_resize=colour_before_resize)
    mean = torch.tensor(MEAN).view(3, 1, 1)

    def run(item, seed: int) -> int:
        path, boxes, labels = item
        rng = np.random.default_rng(seed)
        with Image.open(path) as image:
            pixels, out_boxes, _, _ = augment(image, boxes, labels, np.zeros(len(labels), bool), rng)
        chw = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        tensor = chw.float().sub_(mean)  # (3, H, W) float32
        assert tensor.shape == (3, *DATA_SHAPE)
        return len(out_boxes)

    return run


def torchvision_pipeline(colour_before_resize: bool = False):
    del colour_before_resize  # multibox only
    from torchvision import tv_tensors
    from torchvision.io import ImageReadMode, decode_jpeg, read_file
    from torchvision.transforms import v2 as T

    transform = T.Compose(
        [
            T.RandomPhotometricDistort(p=1.0),
            T.RandomZoomOut(fill={tv_tensors.Image: list(MEAN), "others": 0}),
            T.RandomIoUCrop(),
            T.RandomHorizontalFlip(p=0.5),
            T.Resize(DATA_SHAPE),
            T.SanitizeBoundingBoxes(),
            T.ToDtype(torch.float32, scale=False),
        ]
    )
    mean = torch.tensor(MEAN).view(3, 1, 1)

    def run(item, seed: int) -> int:
        path, boxes, labels = item
        torch.manual_seed(seed)
        image = tv_tensors.Image(decode_jpeg(read_file(str(path)), mode=ImageReadMode.RGB))
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(boxes), format="XYXY", canvas_size=image.shape[-2:]
            ),
            "labels": torch.from_numpy(labels),
        }
        image, target = transform(image, target)
        tensor = image.sub_(mean)  # (3, H, W) float32
        assert tensor.shape == (3, *DATA_SHAPE)
        return len(target["boxes"])

    return run


PIPELINES = {"multibox": multibox_pipeline, "torchvision": torchvision_pipeline}


def time_share(name: str, items: list, seeds: list[int], options: dict) -> tuple[float, int]:
    """Seconds to process ``items`` with the named pipeline (one torch thread), and the boxes kept."""
    torch.set_num_threads(1)
    run = PIPELINES[name](**options)
    for item, seed in zip(items[:2], seeds, strict=False):  # warm-up: imports, tables, caches
        run(item, seed)
    start = time.perf_counter()
    kept = sum(run(item, seed) for item, seed in zip(items, seeds, strict=True))
    return time.perf_counter() - start, kept


def time_pipeline(name: str, items: list, round_: int, threads: int, options: dict) -> tuple[float, int]:
    """Images per second per core for one round, and the boxes kept."""
    seeds = [round_ * 1_000_003 + i for i in range(len(items))]
    if threads == 1:
        seconds, kept = time_share(name, items, seeds, options)
        return len(items) / seconds, kept
    shares = [(name, items[i::threads], seeds[i::threads], options) for i in range(threads)]
    with multiprocessing.get_context("spawn").Pool(threads) as pool:
        results = pool.starmap(time_share, shares)
    # Per-core rate: each worker's own images over its own busy time, averaged over workers.
    rate = statistics.mean(
        len(share[1]) / seconds for share, (seconds, _) in zip(shares, results, strict=True)
    )
    return rate, sum(k for _, k in results)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("voc_dir", type=Path, help="VOC-layout folder (Annotations/, JPEGImages/)")
    parser.add_argument("--threads", type=int, default=1, help="worker processes, one core each (default 1)")
    parser.add_argument("--limit", type=int, default=None, help="use the first N annotated images")
    parser.add_argument("--rounds", type=int, default=3, help="alternating timed rounds per pipeline")
    parser.add_argument("--make-large", type=Path, default=None, metavar="DIR", help="write 4000x3000 copies")
    parser.add_argument(
        "--colour-before-resize",
        action="store_true",
        help="multibox: jitter before the resize (original order)",
    )
    parser.add_argument("--only", choices=sorted(PIPELINES), default=None, help="time one pipeline")
    args = parser.parse_args(argv)

    root = args.voc_dir
    if args.make_large is not None:
        root = make_large(root, args.make_large, args.limit)
    items = read_voc_boxes(root, args.limit)
    if not items:
        raise SystemExit(f"no annotations under {root / 'Annotations'}")
    with Image.open(items[0][0]) as first:
        size = first.size
    print(
        f"{len(items)} images from {root} (first {size[0]}x{size[1]}), {args.threads} worker(s), "
        f"{args.rounds} rounds, {platform.processor() or platform.machine()}, torch {torch.__version__}"
        + (", multibox colour before resize" if args.colour_before_resize else "")
    )
    names = [args.only] if args.only else list(PIPELINES)
    rates: dict[str, list[float]] = {name: [] for name in names}
    kept: dict[str, int] = {}
    for round_ in range(args.rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            options = {"colour_before_resize": args.colour_before_resize}
            rate, kept[name] = time_pipeline(name, items, round_, args.threads, options)
            rates[name].append(rate)
    for name in names:
        r = rates[name]
        print(
            f"{name}: {statistics.median(r):.1f} img/s  (per core; rounds {', '.join(f'{x:.1f}' for x in r)}; "
            f"{kept[name] / len(items):.1f} boxes/img kept)"
        )


if __name__ == "__main__":
    main()
