"""The original's C++ training augmenter (MXNet ``ImageDetRecordIter``) on a VOC folder: images per second.

Runs in the MXNet virtualenv (``benchmarks/setup_mxnet.sh``), never in the project's: it needs only mxnet and
numpy. Packs the VOC images into a RecordIO file the way the example's ``im2rec`` does (the JPEG bytes as they
are, the label ``[2, 6, cls, x1, y1, x2, y2, difficult, ...]`` normalised), then iterates it with the example's
training configuration (``config/config.py``: five min-IoU crop samplers, zoom-out to 4x with probability 0.5,
colour jitter, random interpolation, mirror, force resize to 300x300, mean subtraction) and
``preprocess_threads=1``. Reports images per second of wall time and per CPU second of the process (decoding
and augmentation run on the one preprocessing thread; the record reader and batcher threads are included in
the CPU time, so the per-CPU-second figure is the stricter one).

    benchmarks/.venv-mxnet/bin/python benchmarks/mxnet_augment.py VOC_DIR [--limit N] [--epochs 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MXNET_CPU_WORKER_NTHREADS", "1")

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402

SAMPLER_MIN_IOUS = (0.1, 0.3, 0.5, 0.7, 0.9)


def pack_voc(root: Path, rec: Path, limit: int | None) -> int:
    """Write ``rec`` (+ ``.idx``) from ``root``'s Annotations/JPEGImages; returns the number of images."""
    names: dict[str, int] = {}
    writer = mx.recordio.MXIndexedRecordIO(str(rec.with_suffix(".idx")), str(rec), "w")
    count = 0
    for xml in sorted((root / "Annotations").glob("*.xml"))[:limit]:
        tree = ET.parse(xml).getroot()
        size = tree.find("size")
        width, height = float(size.find("width").text), float(size.find("height").text)
        label = [2.0, 6.0]
        for obj in tree.iter("object"):
            bb = obj.find("bndbox")
            x1, y1, x2, y2 = (float(bb.find(tag).text) for tag in ("xmin", "ymin", "xmax", "ymax"))
            difficult = obj.find("difficult")
            label += [
                float(names.setdefault(obj.find("name").text.strip(), len(names))),
                x1 / width,
                y1 / height,
                x2 / width,
                y2 / height,
                float(difficult is not None and difficult.text.strip() == "1"),
            ]
        jpeg = (root / "JPEGImages" / tree.find("filename").text.strip()).read_bytes()
        header = mx.recordio.IRHeader(0, np.array(label, np.float32), count, 0)
        writer.write_idx(count, mx.recordio.pack(header, jpeg))
        count += 1
    writer.close()
    return count


def training_iterator(rec: Path, batch: int, seed: int) -> mx.io.DataIter:
    """``ImageDetRecordIter`` with the example's ``cfg.train`` and one preprocessing thread."""
    n = len(SAMPLER_MIN_IOUS)
    return mx.io.ImageDetRecordIter(
        path_imgrec=str(rec),
        batch_size=batch,
        data_shape=(3, 300, 300),
        mean_r=123.0,
        mean_g=117.0,
        mean_b=104.0,
        resize_mode="force",
        label_pad_width=350,
        label_pad_value=-1,
        preprocess_threads=1,
        prefetch_buffer=1,
        shuffle=True,
        seed=seed,
        rand_crop_prob=n / (n + 1.0),
        num_crop_sampler=n,
        min_crop_scales=(0.3,) * n,
        max_crop_scales=(1.0,) * n,
        min_crop_aspect_ratios=(0.5,) * n,
        max_crop_aspect_ratios=(2.0,) * n,
        min_crop_overlaps=SAMPLER_MIN_IOUS,
        max_crop_overlaps=(1.0,) * n,
        min_crop_sample_coverages=(0.0,) * n,
        max_crop_sample_coverages=(1.0,) * n,
        min_crop_object_coverages=(0.0,) * n,
        max_crop_object_coverages=(1.0,) * n,
        max_crop_trials=(25,) * n,
        crop_emit_mode="center",
        rand_pad_prob=0.5,
        max_pad_scale=4.0,
        fill_value=127,
        random_hue_prob=0.5,
        max_random_hue=18,
        random_saturation_prob=0.5,
        max_random_saturation=32,
        random_illumination_prob=0.5,
        max_random_illumination=32,
        random_contrast_prob=0.5,
        max_random_contrast=0.5,
        inter_method=10,
        rand_mirror_prob=0.5,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("voc_dir", type=Path)
    parser.add_argument("--limit", type=int, default=None, help="the first N annotated images")
    parser.add_argument("--epochs", type=int, default=6, help="timed passes over the images")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rec = Path(tmp) / "train.rec"
        count = pack_voc(args.voc_dir, rec, args.limit)
        data = training_iterator(rec, args.batch, seed=233)
        for _ in data:  # warm-up pass: the label pre-scan, thread start-up, page cache
            pass
        # The parser decodes a whole ~8 MB chunk of records ahead (on small sets: the next pass), so single
        # passes alternate between near-zero and double time: time all passes as one block instead.
        wall, cpu, images = time.perf_counter(), time.process_time(), 0
        for _ in range(args.epochs):
            data.reset()
            for batch in data:
                batch.data[0].wait_to_read()
                images += batch.data[0].shape[0] - batch.pad
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"{count} images from {args.voc_dir}, mxnet {mx.__version__}, 1 preprocessing thread, batch {args.batch}, "
        f"{args.epochs} passes"
    )
    print(
        f"mxnet ImageDetRecordIter: {images / wall:.1f} img/s wall, {images / cpu:.1f} img/s per CPU second"
    )


if __name__ == "__main__":
    main()
