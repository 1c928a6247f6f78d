"""``multibox benchmark``: the command-line side of :func:`multibox.deploy.benchmark.benchmark_detector`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from multibox.cli_args import positive_int


def batch_sizes(text: str) -> tuple[int, ...]:
    """``"1,2,4"`` -> ``(1, 2, 4)``; every item an integer >= 1."""
    items = [item.strip() for item in text.split(",")]
    try:
        return tuple(positive_int(item) for item in items)
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"{error} in {text!r} (give integers >= 1, e.g. 1,2,4,8)") from None


def add_benchmark_command(sub: argparse._SubParsersAction) -> None:
    from multibox.deploy.benchmark import DEFAULT_BATCH_SIZES, RUNTIMES

    bench = sub.add_parser(
        "benchmark",
        help="latency, images/s and peak memory per batch size of a checkpoint or exported file",
        description="Time a detector on random uint8 images at its input size, as the original example's "
        "benchmark_score.py: for each batch size the median and 90th-percentile latency of the whole "
        "detector (network, decoding, NMS) and, in PyTorch, of the network alone; images/s; peak memory "
        "growth. A checkpoint with --runtime onnx or torchscript is exported to a temporary file first.",
    )
    bench.add_argument("path", help="a checkpoint written by multibox train, or an exported .onnx / .ts file")
    bench.add_argument(
        "--batch-sizes",
        type=batch_sizes,
        default=DEFAULT_BATCH_SIZES,
        help=f"comma-separated (default: {','.join(map(str, DEFAULT_BATCH_SIZES))}, the original's sweep)",
    )
    bench.add_argument(
        "--runtime", choices=RUNTIMES, help="default: the file's own; torch (eager PyTorch) for a checkpoint"
    )
    bench.add_argument(
        "--data-shape",
        type=positive_int,
        help="input size (default: the detector's; fixed in an exported file)",
    )
    bench.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    bench.add_argument(
        "--repeats", type=positive_int, default=10, help="timed runs per batch size (default 10)"
    )
    bench.add_argument("--warmup", type=int, default=2, help="untimed runs before them (default 2)")
    bench.add_argument("--threads", type=positive_int, help="CPU threads (default: the runtime's choice)")
    bench.add_argument(
        "--out", metavar="FILE.json", help="also write the numbers as JSON (replaced if it exists)"
    )


def run_benchmark(args: argparse.Namespace) -> int:
    from multibox.deploy.benchmark import benchmark_detector
    from multibox.deploy.formats import format_of_file
    from multibox.engine.distributed import pick_device
    from multibox.errors import ConfigError

    out = Path(args.out) if args.out else None
    if out is not None and out.is_dir():
        raise ConfigError(f"--out {out} is a folder: give a file name, e.g. {out / 'benchmark.json'}")
    try:
        device = pick_device(args.device)
    except RuntimeError as error:
        raise ConfigError(f"--device {args.device!r} is not a device (cpu, cuda, cuda:1 ...)") from error
    if (
        args.runtime not in (None, "torch")
        and format_of_file(args.path) is None
        and Path(args.path).is_file()
    ):
        print(f"exporting {args.path} to a temporary {args.runtime} file first", flush=True)
    report = benchmark_detector(
        args.path,
        args.runtime,
        batch_sizes=args.batch_sizes,
        data_shape=args.data_shape,
        device=device,
        repeats=args.repeats,
        warmup=args.warmup,
        threads=args.threads,
        progress=True,
    )
    print(report.format())
    if out is None:
        print("(--out FILE.json writes these numbers as JSON)")
        return 0
    replaced = out.exists()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_dict(), indent=2) + "\n")
    print(f"{'replaced' if replaced else 'wrote'} {out}")
    return 0
