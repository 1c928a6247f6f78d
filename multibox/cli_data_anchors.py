"""``multibox data anchors``: how well a network's anchors cover a dataset's boxes (the best recall they allow),
and with ``--fit`` anchors fitted to the boxes, written with ``--write`` as a training config's
``network_options``."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibox.cli_args import add_dataset_source, fraction, positive_int
from multibox.errors import ConfigError


def add_anchors_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``anchors`` to the ``multibox data`` subcommands."""
    anchors = data_subparsers.add_parser(
        "anchors",
        help="how many boxes the network's anchors can match (IoU >= 0.5), per class and size; --fit fits them",
        description="Anchor coverage: the share of the dataset's boxes that some anchor of the network matches "
        "with IoU >= --iou in the network's input (images resized to --data-shape, aspect not kept), overall, "
        "per class and per size (COCO's 32/96 px of 640 scaled to the input: 0.05 and 0.15 of its side). "
        "--fit also fits anchor sizes and ratios by k-means (1 - IoU) with the same anchors per location.",
    )
    add_dataset_source(anchors)
    anchors.add_argument("--network", default="vgg16_reduced", help="network name (default: vgg16_reduced)")
    anchors.add_argument("--data-shape", type=positive_int, default=300, help="input size (default: 300)")
    anchors.add_argument("--iou", type=fraction, default=0.5, help="IoU a match needs (default: 0.5)")
    anchors.add_argument("--fit", action="store_true", help="also fit anchors and report their coverage")
    anchors.add_argument(
        "--write",
        metavar="FILE",
        help="write the fitted anchors as YAML `network_options: {...}` (implies --fit)",
    )
    anchors.add_argument("--seed", type=int, default=0, help="k-means seed (default: 0)")


def run_anchors(args: argparse.Namespace) -> int:
    """Print the coverage table (and the fit); write ``--write``. Returns the exit code."""
    from multibox.data.formats import load_dataset
    from multibox.engine.anchor_report import anchor_report

    write = Path(args.write) if getattr(args, "write", None) else None
    if write is not None and write.is_dir():
        raise ConfigError(f"--write {write} is a folder; give a YAML file name such as anchors.yaml")
    dataset = load_dataset(args.path, args.split, args.format, args.classes)
    fit = bool(getattr(args, "fit", False)) or write is not None
    report = anchor_report(
        dataset,
        args.network,
        args.data_shape,
        fit=fit,
        iou=getattr(args, "iou", 0.5),
        seed=getattr(args, "seed", 0),
    )
    print(format_report(report))
    if write is not None and report.fit is not None:
        _write_options(write, report.fit.options)
        print(f"wrote {write}: network_options for network={args.network} data_shape={args.data_shape}")
    return 0


def _write_options(path: Path, options: dict) -> None:
    import yaml

    text = yaml.safe_dump({"network_options": options}, default_flow_style=None, sort_keys=False)
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write --write {path}: {error.strerror}; choose a writable file") from error


def _line(name: str, row) -> list[str]:
    return [name, str(row.boxes), f"{100 * row.coverage:.1f} %", f"{row.mean_best_iou:.3f}"]


def coverage_table(coverage) -> list[str]:
    """The lines of one coverage table: overall, per class, per size bucket (boxes, coverage, mean best IoU)."""
    from multibox.model.anchor_fit import bucket_edges_px

    rows = [["", "boxes", "coverage", "mean best IoU"], _line("all", coverage.overall)]
    rows += [_line(f"class {name}", row) for name, row in coverage.per_class.items()]
    for name, low, high in bucket_edges_px(coverage.data_shape):
        span = (
            f"< {high:g} px"
            if low == 0
            else f">= {low:g} px"
            if high == float("inf")
            else f"{low:g}-{high:g} px"
        )
        rows.append(_line(f"{name} ({span})", coverage.per_size[name]))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(r)) for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def format_report(report) -> str:
    """The text ``multibox data anchors`` prints for an :class:`~multibox.engine.anchor_report.AnchorReport`."""
    coverage = report.coverage
    lines = [
        f"{report.network} at {report.data_shape}x{report.data_shape}: {report.images} images, "
        f"{coverage.overall.boxes} boxes; covered = some anchor has IoU >= {coverage.threshold:g}",
        "",
        *coverage_table(coverage),
    ]
    if report.fit is not None:
        lines += ["", *_fit_lines(report.fit)]
    return "\n".join(lines)


def _fit_lines(fit) -> list[str]:
    from multibox.model.anchor_fit import fit_score

    names = {"kmeans": "k-means sizes and ratios", "ratios": "the network's sizes, k-means ratios"}
    method = names.get(
        fit.method, fit.method.replace("p", "percentile ").replace("+ ratios", "+ k-means ratios")
    )
    lines = [f"fitted anchors ({method}, same anchors per location):", "layer  sizes / ratios"]
    for k, (sizes, ratios) in enumerate(zip(fit.fitted["sizes"], fit.fitted["ratios"], strict=True)):
        lines.append(f"{k:>5}  {', '.join(f'{s:g}' for s in sizes)} / {', '.join(f'{r:g}' for r in ratios)}")
    before, after = fit_score(fit.before), fit_score(fit.after)
    lines += ["", "after the fit:", *coverage_table(fit.after), ""]
    change = (
        f"mean class coverage {100 * before[0]:.1f} % -> {100 * after[0]:.1f} % "
        f"(all boxes {100 * before[1]:.1f} % -> {100 * after[1]:.1f} %)"
    )
    if fit.improved:
        lines.append(f"{change}: train with anchors=auto, or these network_options (--write FILE)")
    else:
        lines.append(f"{change}: the fit does not raise the coverage, keep the network's default anchors")
    return lines
