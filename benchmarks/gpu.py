"""Absolute throughput on one CUDA device: training, the data loader, and the MultiBox operators.

Three sections, each under a hard time cap (``--budget``), printed as one table (and written as JSON with
``--out``):

* training: images/s of ``multibox.engine.trainer.Trainer.run_step`` (``SSDLoss`` forward under autocast,
  finiteness checks, backward, SGD step, the epoch metric) for vgg16_reduced at 300 and efficientnet_lite0 at
  320, batch 32 and 64, AMP (bf16 autocast) off and on, channels_last, ``cudnn.benchmark``. "end to end" feeds
  it from the real loader (``make_loader`` with ``TrainAugmentation``, uint8 batches normalised on the device,
  as ``train_setup.training_loader``); "fixed batch" repeats one batch already on the device (the GPU's
  ceiling). The end-to-end run starts after the fixed-batch run has warmed the GPU, on a fresh loader
  iterator, so the loader's prefetch queue is not pre-filled while cuDNN picks its algorithms.
* loader: images/s of that loader alone (``pin_memory=True``) for each ``--workers`` count.
* operators: ms per call (``torch.cuda.synchronize`` around each) of ``multibox_prior`` (the 8732 SSD300 anchors),
  ``multibox_target``, ``multibox_detection`` (MXNet semantics and per class) and ``greedy_nms`` (the top 400
  rows), on the SSD300 cases of ``benchmarks/ops.py`` at batch 32 and 256.

Data: bccd from ``$MULTIBOX_DATASETS`` (default ``../shared/datasets``), else ``tests/fixtures/bccd_subset``; its
records are repeated so one epoch outlasts a measurement (no epoch-boundary stalls).

    python benchmarks/gpu.py [--out gpu.json] [--quick] [--steps 40] [--warmup 8] [--workers 8,16]
                             [--budget 60,150,90]
    python benchmarks/gpu.py --allow-cpu --quick     # a tiny CPU run that checks the script itself

Without CUDA (and without ``--allow-cpu``) it prints one line and exits 0.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import math
import os
import platform
import sys
import time
from contextlib import nullcontext
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import torch  # noqa: E402
from _ops_cases import IMAGE_SIZE, SSD300_LAYERS, make_case  # noqa: E402
from _ops_timing import measure  # noqa: E402

from multibox.data import TrainAugmentation, load_dataset, make_loader  # noqa: E402
from multibox.engine.distributed import DistributedContext  # noqa: E402
from multibox.engine.hooks import EpochMetrics  # noqa: E402
from multibox.engine.optim import build_optimizer, freeze_parameters  # noqa: E402
from multibox.engine.train_setup import SSDLoss  # noqa: E402
from multibox.engine.trainer import Batch, Trainer  # noqa: E402
from multibox.model import build_ssd, network_spec  # noqa: E402
from multibox.ops import (  # noqa: E402
    decode_boxes,
    greedy_nms,
    multibox_detection,
    multibox_prior,
    multibox_target,
)
from multibox.ops.boxes import VARIANCES  # noqa: E402

NETWORKS = (("vgg16_reduced", 300), ("efficientnet_lite0", 320))
SECTIONS = ("loader", "training", "operators")
DEFAULT_BUDGET = (60.0, 150.0, 90.0)  # seconds per section, in SECTIONS order
# The example's training parameters and detection settings, as benchmarks/ops.py.
TARGET_PARAMS = {
    "overlap_threshold": 0.5,
    "ignore_label": -1,
    "negative_mining_ratio": 3.0,
    "negative_mining_thresh": 0.5,
    "minimum_negative_samples": 0,
    "variances": VARIANCES,
}
DETECTION_PARAMS = {
    "clip": True,
    "threshold": 0.01,
    "nms_threshold": 0.45,
    "variances": VARIANCES,
    "nms_topk": 400,
}
NMS_ROWS = 400


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def error_note(error: BaseException) -> str:
    """A row's note for a measurement that failed (the run goes on: a lent GPU's time is short)."""
    text = " ".join(f"{type(error).__name__}: {error}".split())
    log(f"  failed: {text}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return "error: " + text[:300]


class Budget:
    """A section's hard time cap: items check ``left()`` before starting and ``over()`` inside their loops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.perf_counter() + seconds

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def over(self) -> bool:
        return self.left() <= 0


# data ----------------------------------------------------------------------------------------------------
def find_bccd(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    shared = Path(os.environ.get("MULTIBOX_DATASETS") or ROOT.parent / "shared" / "datasets") / "bccd"
    return shared if shared.is_dir() else ROOT / "tests" / "fixtures" / "bccd_subset"


def load_bccd(path: Path, min_images: int):
    """The trainval (else train) split, its records repeated to at least ``min_images``."""
    split = "trainval" if (path / "ImageSets" / "Main" / "trainval.txt").is_file() else "train"
    dataset = load_dataset(path, split)
    size = len(dataset)
    if 0 < size < min_images and dataclasses.is_dataclass(dataset):
        dataset = dataclasses.replace(dataset, records=list(dataset.records) * math.ceil(min_images / size))
    return dataset, split, size


def training_loader(dataset, batch: int, data_shape: int, workers: int, pin: bool):
    """The loader of ``train_setup.training_loader``: SSD augmentation, uint8 batches, indices, drop_last."""
    return make_loader(
        dataset,
        batch,
        train=True,
        data_shape=data_shape,
        transform=TrainAugmentation(data_shape=(data_shape, data_shape)),
        num_workers=workers,
        seed=0,
        drop_last=True,
        pin_memory=pin,
        return_indices=True,
    )


def batches(loader):
    """Batches over epochs, from a fresh iterator (persistent workers: in-flight batches are dropped)."""
    epoch = 0
    while True:
        loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def stop_workers(loader) -> None:
    """End a loader's persistent workers now rather than whenever the loader is collected."""
    iterator = getattr(loader, "_iterator", None)
    if iterator is not None and hasattr(iterator, "_shutdown_workers"):
        iterator._shutdown_workers()
    loader._iterator = None


# loader --------------------------------------------------------------------------------------------------
def time_loader(loader, warmup: int, count: int, budget: Budget) -> dict:
    """Images/s over ``count`` batches after ``warmup`` (at least the workers' first round)."""
    stream = batches(loader)
    for _ in range(warmup):
        next(stream)
    images, done, start = 0, 0, time.perf_counter()
    while done < count and not budget.over():
        images += next(stream)[0].shape[0]
        done += 1
    seconds = time.perf_counter() - start
    stream.close()
    row = {"batches": done, "images_per_s": images / seconds if done else None}
    if done < count:
        row["note"] = "partial: budget"
    return row


def bench_loader(args, dataset, device, budget: Budget) -> list[dict]:
    rows = []
    batch = max(args.batches)
    for data_shape in sorted({shape for _, shape in NETWORKS}):
        for workers in args.workers:
            row = {"data_shape": data_shape, "batch": batch, "workers": workers}
            if budget.left() < 5:
                rows.append({**row, "note": "skipped: budget"})
                continue
            loader = training_loader(dataset, batch, data_shape, workers, device.type == "cuda")
            try:
                row |= time_loader(loader, max(args.warmup, workers), max(args.steps, 4 * workers), budget)
                log(
                    f"  loader {data_shape}px batch {batch}, {workers} workers: {fmt(row['images_per_s'])} img/s"
                )
            except Exception as error:  # e.g. workers killed for lack of shared memory
                row["note"] = error_note(error)
            finally:
                stop_workers(loader)
            rows.append(row)
    return rows


# training ------------------------------------------------------------------------------------------------
def default_freeze(network: str) -> str | None:
    """The parameters training freezes by default (the original's choice: VGG's first two blocks)."""
    return network_spec(network).freeze


class BenchTrainer:
    """One network under the engine's own :class:`~multibox.engine.trainer.Trainer` step (loss under autocast,
    the non-finite check, backward, optimiser step) and its epoch-metric hook; ``step`` runs it on a batch."""

    def __init__(self, network: str, num_classes: int, data_shape: int, device: torch.device) -> None:
        model = build_ssd(network, num_classes, data_shape)
        freeze_parameters(model, default_freeze(network))
        model = model.to(device).to(memory_format=torch.channels_last).train()
        loss = SSDLoss(model, negative_mining_ratio=3.0, minimum_negative_samples=0, normalization="valid")
        optimizer = build_optimizer(model, "sgd", lr=0.002, momentum=0.9, weight_decay=5e-4)
        self.metrics = EpochMetrics()
        self.trainer = Trainer(
            model,
            loss,
            optimizer,
            None,
            DistributedContext(device=device),
            1,
            channels_last=True,
            hooks=[self.metrics],
        )
        self.device = device
        self.nonfinite = 0

    def prepare(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.trainer.prepare_images(images), labels.to(self.device, non_blocking=True)

    def step(self, images: torch.Tensor, labels: torch.Tensor, autocast) -> None:
        trainer = self.trainer
        trainer.autocast, trainer.batch = autocast, Batch(images, labels, [])
        trainer.run_step()
        self.metrics.after_step()
        self.nonfinite += not trainer.step_finite


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_steps(
    trainer: BenchTrainer, feed, autocast, warmup: int, steps: int, budget: Budget
) -> tuple[int, int, float]:
    """(steps timed, images, seconds) of ``steps`` steps after ``warmup``; ``feed()`` gives a device batch."""
    for _ in range(warmup):
        if budget.over():
            break
        trainer.step(*feed(), autocast)
    synchronize(trainer.device)
    done, images, start = 0, 0, time.perf_counter()
    while done < steps and not budget.over():
        batch = feed()
        trainer.step(*batch, autocast)
        images += batch[0].shape[0]
        done += 1
    synchronize(trainer.device)
    return done, images, time.perf_counter() - start


def autocast_for(device: torch.device, amp: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if amp else nullcontext()


def bench_config(args, trainer: BenchTrainer, loader, fixed: tuple, row: dict, budget: Budget) -> dict:
    """One (network, batch, AMP) row: the fixed-batch run (which also warms up cuDNN's autotuning and the
    allocator), then the end-to-end run from a fresh loader iterator (an empty prefetch queue)."""
    device = trainer.device
    autocast = autocast_for(device, row["amp"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    done, count, seconds = timed_steps(trainer, lambda: fixed, autocast, args.warmup, args.steps, budget)
    row |= {"fixed_steps": done, "fixed_images_per_s": count / seconds if done else None}
    if device.type == "cuda":
        row["peak_memory_gb"] = torch.cuda.max_memory_allocated(device) / 2**30
    stream = batches(loader)

    def feed() -> tuple[torch.Tensor, torch.Tensor]:
        images, labels, _ = next(stream)
        return trainer.prepare(images, labels)

    done_e2e, count, seconds = timed_steps(trainer, feed, autocast, args.warmup, args.steps, budget)
    stream.close()
    row |= {
        "steps": done_e2e,
        "images_per_s": count / seconds if done_e2e else None,
        "ms_per_step": 1e3 * seconds / done_e2e if done_e2e else None,
    }
    if done < args.steps or done_e2e < args.steps:
        row["note"] = "partial: budget"
    log(
        f"  train {row['network']} {row['data_shape']}px batch {row['batch']} amp "
        f"{'on' if row['amp'] else 'off'}: {fmt(row.get('images_per_s'))} img/s end to end, "
        f"{fmt(row.get('fixed_images_per_s'))} img/s fixed batch"
    )
    return row


def bench_training(args, dataset, device, budget: Budget) -> list[dict]:
    rows = []
    num_classes = len(dataset.class_names)
    workers = max(args.workers)
    for network, data_shape in NETWORKS:
        trainer = None
        for batch in args.batches:
            configs = [
                {"network": network, "data_shape": data_shape, "batch": batch, "amp": amp}
                for amp in (False, True)
            ]
            if budget.left() < 10:
                rows += [{**row, "note": "skipped: budget"} for row in configs]
                continue
            try:
                if trainer is None:
                    trainer = BenchTrainer(network, num_classes, data_shape, device)
                # the fixed batch from a loader without workers: no worker busy during the fixed-batch run
                images, labels, _ = next(iter(training_loader(dataset, batch, data_shape, 0, False)))
                fixed = trainer.prepare(images, labels)
            except Exception as error:
                note = error_note(error)
                rows += [{**row, "note": note} for row in configs]
                continue
            loader = training_loader(dataset, batch, data_shape, workers, device.type == "cuda")
            for row in configs:
                if budget.left() < 5:
                    rows.append({**row, "note": "skipped: budget"})
                    continue
                try:
                    rows.append(bench_config(args, trainer, loader, fixed, row, budget))
                except Exception as error:  # out of memory, a loader worker killed, ...
                    rows.append({**row, "note": error_note(error)})
                    stop_workers(loader)  # a fresh start for the next row
            stop_workers(loader)
            del fixed
        if trainer is not None and trainer.nonfinite:
            log(f"  ({network}: {trainer.nonfinite} non-finite steps skipped, counted as run)")
        trainer = None
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


# operators -----------------------------------------------------------------------------------------------
def ssd300_prior(device: torch.device) -> torch.Tensor:
    return torch.cat(
        [
            multibox_prior((n, n), sizes, ratios, steps=(step / IMAGE_SIZE, step / IMAGE_SIZE), device=device)
            for n, sizes, ratios, step in SSD300_LAYERS
        ]
    )


def nms_inputs(prob: torch.Tensor, loc: torch.Tensor, anchors: torch.Tensor):
    """The top ``NMS_ROWS`` anchors by best foreground score, decoded: boxes, class groups, active rows."""
    n, _, a = prob.shape
    score, cls = prob[:, 1:].max(dim=1)  # (N, A)
    top_score, index = torch.topk(score, min(NMS_ROWS, a), dim=1)  # descending
    offsets = torch.gather(loc.view(n, a, 4), 1, index.unsqueeze(-1).expand(-1, -1, 4))
    boxes = decode_boxes(anchors[index], offsets, VARIANCES, clip=True)
    return boxes, torch.gather(cls, 1, index), top_score >= DETECTION_PARAMS["threshold"]


def operator_calls(case, anchors: torch.Tensor) -> dict:
    """The timed calls on one case (numpy arrays, moved to the anchors' device)."""
    t = lambda a: torch.from_numpy(a).to(anchors.device)  # noqa: E731
    labels, logits, prob, loc = t(case.labels), t(case.cls_logits), t(case.cls_prob), t(case.loc_pred)
    boxes, classes, active = nms_inputs(prob, loc, anchors)
    nms_threshold = DETECTION_PARAMS["nms_threshold"]
    return {
        "multibox_target": lambda: multibox_target(anchors, labels, logits, **TARGET_PARAMS),
        "multibox_detection (MXNet semantics)": lambda: multibox_detection(
            prob, loc, anchors, **DETECTION_PARAMS
        ),
        "multibox_detection (per_class)": lambda: multibox_detection(
            prob, loc, anchors, **DETECTION_PARAMS, per_class=True, max_detections=200
        ),
        f"greedy_nms ({NMS_ROWS} rows, per class)": lambda: greedy_nms(boxes, classes, active, nms_threshold),
    }


def bench_operators(args, device, budget: Budget) -> list[dict]:
    rows = []
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    anchors_cpu = ssd300_prior(torch.device("cpu"))
    anchors = anchors_cpu.to(device)
    groups = [("-", None)] + [(case, batch) for case in args.cases for batch in args.op_batches]
    for number, (case_name, batch) in enumerate(groups):
        left = budget.left()
        if left < 3:
            rows.append({"case": case_name, "batch": batch, "op": "*", "note": "skipped: budget"})
            continue
        max_seconds = max(1.0, min(20.0, left / (len(groups) - number) - 1.0))
        try:
            if batch is None:  # batch-independent
                fns = {"multibox_prior (6 SSD300 layers, 8732 anchors)": lambda: ssd300_prior(device)}
            else:
                fns = operator_calls(make_case(case_name, batch, anchors_cpu, seed=0), anchors)
            with torch.no_grad():
                timings = measure(
                    fns, sync=sync, warmup=3, repeat=args.op_repeat, min_repeat=3, max_seconds=max_seconds
                )
        except Exception as error:
            rows.append({"case": case_name, "batch": batch, "op": "*", "note": error_note(error)})
            fns = None
            continue
        for op, timing in timings.items():
            q1, q3 = timing.quartiles
            row = {
                "case": case_name,
                "batch": batch,
                "op": op,
                "median_ms": timing.median,
                "q1_ms": q1,
                "q3_ms": q3,
            }
            row["n"] = len(timing.times_ms)
            log(f"  {case_name:8s} batch {batch or '-':>4} {op:48s} {timing.median:9.3f} ms")
            rows.append(row)
        del fns
        gc.collect()
    return rows


# report --------------------------------------------------------------------------------------------------
def fmt(value, digits: int | None = None) -> str:
    """``value`` with ``digits`` decimals (default: none from 100 up, else one)."""
    if value is None:
        return "-"
    if digits is None:
        digits = 0 if abs(value) >= 100 else 1
    return f"{value:.{digits}f}"


def short(note: str, width: int = 70) -> str:
    return note if len(note) <= width else note[: width - 3] + "..."


def print_table(header: list[str], rows: list[list]) -> None:
    """Columns padded to their widest cell: numbers right-aligned, text left-aligned."""

    def numeric(column: int) -> bool:
        cells = [str(r[column]) for r in rows if str(r[column]) not in ("", "-")]
        return bool(cells) and all(c.replace(".", "", 1).replace("-", "", 1).isdigit() for c in cells)

    cells = [[str(c) for c in row] for row in [header, *rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    right = [numeric(i) for i in range(len(header))]
    for row in cells:
        line = "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right, strict=True))
        print(line.rstrip())


def report(result: dict) -> None:
    m = result["machine"]
    print(
        f"\n{m['device']}; torch {m['torch']}, CUDA {m['cuda']}, cuDNN {m['cudnn']}; {m['cpus']} CPUs; "
        f"data {result['data']['path']} ({result['data']['split']}, {result['data']['images']} images)"
    )
    print(
        f"channels_last, cudnn.benchmark, AMP = bf16 autocast; {result['settings']['steps']} timed steps after "
        f"{result['settings']['warmup']} warm-up; training loader {max(result['settings']['workers'])} workers\n"
    )
    training = result.get("training", [])
    if training:
        print("training")
        print_table(
            [
                "network",
                "size",
                "batch",
                "AMP",
                "end-to-end img/s",
                "ms/step",
                "fixed-batch img/s",
                "peak GB",
                "note",
            ],
            [
                [
                    r["network"],
                    r["data_shape"],
                    r["batch"],
                    "bf16" if r["amp"] else "off",
                    fmt(r.get("images_per_s")),
                    fmt(r.get("ms_per_step"), 1),
                    fmt(r.get("fixed_images_per_s")),
                    fmt(r.get("peak_memory_gb"), 1),
                    short(r.get("note", "")),
                ]
                for r in training
            ],
        )
    loader = result.get("loader", [])
    if loader:
        print("\nloader (TrainAugmentation, pin_memory, uint8 batches)")
        print_table(
            ["size", "batch", "workers", "img/s", "batches", "note"],
            [
                [
                    r["data_shape"],
                    r["batch"],
                    r["workers"],
                    fmt(r.get("images_per_s")),
                    r.get("batches", "-"),
                    short(r.get("note", "")),
                ]
                for r in loader
            ],
        )
    ops = result.get("operators", [])
    if ops:
        print("\noperators (ms per call, median [IQR])")
        print_table(
            ["case", "batch", "operator", "ms", "IQR", "n", "note"],
            [
                [
                    r["case"],
                    r["batch"] or "-",
                    r["op"],
                    fmt(r.get("median_ms"), 3),
                    f"{r['q1_ms']:.3f}-{r['q3_ms']:.3f}" if "q1_ms" in r else "",
                    r.get("n", ""),
                    short(r.get("note", "")),
                ]
                for r in ops
            ],
        )
    for section, note in result.get("errors", {}).items():
        print(f"\n{section}: {note}")
    print(f"\ntotal {result['seconds']:.0f} s")


def machine(device: torch.device) -> dict:
    cuda = device.type == "cuda"
    return {
        "device": torch.cuda.get_device_name(device)
        if cuda
        else f"CPU ({platform.processor() or platform.machine()})",
        "torch": torch.__version__,
        "cuda": torch.version.cuda if cuda else None,
        "cudnn": torch.backends.cudnn.version() if cuda else None,
        "cpus": os.cpu_count(),
        "tf32_matmul": torch.backends.cuda.matmul.allow_tf32,
        "tf32_cudnn": torch.backends.cudnn.allow_tf32,
    }


def parse_list(text: str, kind=int) -> list:
    return [kind(v) for v in text.split(",") if v.strip()]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer steps, batch 32 only, the trained case only"
    )
    parser.add_argument("--steps", type=int, help="timed training steps per run (default 40; quick 10)")
    parser.add_argument("--warmup", type=int, help="untimed steps before each timed run (default 8; quick 3)")
    parser.add_argument("--workers", help="loader worker counts, comma-separated; training uses the largest")
    parser.add_argument("--batches", help="training batch sizes (default 32,64; quick 32)")
    parser.add_argument("--op-batches", help="operator batch sizes (default 32,256)")
    parser.add_argument(
        "--budget", help="seconds per section: one number, or loader,training,operators (60,150,90)"
    )
    parser.add_argument("--sections", default=",".join(SECTIONS), help="which sections to run")
    parser.add_argument("--data", help="a VOC folder (default: bccd, see above)")
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument(
        "--allow-cpu", action="store_true", help="without CUDA, run a tiny version on the CPU"
    )
    args = parser.parse_args(argv)
    cpu = not torch.cuda.is_available()
    cores = os.cpu_count() or 1
    if cpu:  # the tiny check of the script itself
        defaults = {
            "steps": 1 if args.quick else 2,
            "warmup": 1,
            "batches": "2",
            "op_batches": "2,8",
            "workers": "1",
        }
        default_budget = (20.0, 60.0, 20.0)
    else:
        defaults = {
            "steps": 10 if args.quick else 40,
            "warmup": 3 if args.quick else 8,
            "batches": "32" if args.quick else "32,64",
            "op_batches": "32,256",
            "workers": ",".join(str(w) for w in sorted({max(1, min(16, cores) // 2), min(16, cores)})),
        }
        default_budget = DEFAULT_BUDGET
    args.steps = args.steps if args.steps is not None else defaults["steps"]
    args.warmup = args.warmup if args.warmup is not None else defaults["warmup"]
    args.batches = parse_list(args.batches or defaults["batches"])
    args.op_batches = parse_list(args.op_batches or defaults["op_batches"])
    args.workers = parse_list(args.workers or defaults["workers"])
    budget = parse_list(args.budget, float) if args.budget else list(default_budget)
    args.budget = dict(zip(SECTIONS, budget * 3 if len(budget) == 1 else budget, strict=True))
    args.sections = [s for s in parse_list(args.sections, str) if s]
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    args.cases = ["trained"] if args.quick or cpu else ["trained", "random"]
    args.op_repeat = 5 if args.quick or cpu else 20
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not torch.cuda.is_available() and not args.allow_cpu:
        print(
            f"benchmarks/gpu.py: no CUDA device (torch {torch.__version__}); nothing measured "
            "(--allow-cpu runs a tiny CPU check)"
        )
        return 0
    started = time.perf_counter()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    path = find_bccd(args.data)
    largest = max(args.batches)
    dataset, split, size = load_bccd(
        path, min_images=largest * (args.warmup + args.steps + 2 * max(args.workers) + 4)
    )
    result = {
        "machine": machine(device),
        "settings": {
            "steps": args.steps,
            "warmup": args.warmup,
            "workers": args.workers,
            "batches": args.batches,
            "op_batches": args.op_batches,
            "budget_s": args.budget,
            "channels_last": True,
            "cudnn_benchmark": True,
            "amp_dtype": "bfloat16",
        },
        "data": {"path": str(path), "split": split, "images": size, "repeated_to": len(dataset)},
    }
    log(
        f"{result['machine']['device']}: {size} images of {path} ({split}), sections {', '.join(args.sections)}"
    )

    def save() -> None:
        result["seconds"] = time.perf_counter() - started
        if args.out:
            args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    for section in SECTIONS:
        if section not in args.sections:
            continue
        budget = Budget(args.budget[section])
        log(f"{section} (budget {budget.seconds:.0f} s)")
        try:
            if section == "loader":
                result["loader"] = bench_loader(args, dataset, device, budget)
            elif section == "training":
                result["training"] = bench_training(args, dataset, device, budget)
            else:
                result["operators"] = bench_operators(args, device, budget)
        except Exception as error:  # the other sections still run
            result.setdefault("errors", {})[section] = error_note(error)
        result.setdefault("section_seconds", {})[section] = budget.seconds - budget.left()
        save()  # after every section, so a run cut short keeps what it measured
    save()
    report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
