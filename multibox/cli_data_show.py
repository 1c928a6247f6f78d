"""``multibox data show``: a JPEG grid of a dataset's images with their boxes, as annotated or as training
augments them."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from multibox.cli_args import add_dataset_source, positive_int
from multibox.errors import ConfigError


def add_show_command(data_subparsers: argparse._SubParsersAction) -> None:
    """Add ``show`` to the ``multibox data`` subcommands."""
    show = data_subparsers.add_parser(
        "show",
        help="draw a grid of images with their boxes (as annotated, or --augmented as training sees them)",
        description="Write a JPEG grid of a dataset's images with their ground-truth boxes in class colours, "
        "or with --augmented the same images after the training augmentation.",
    )
    add_dataset_source(show)
    show.add_argument("--augmented", action="store_true", help="after the training augmentation")
    show.add_argument("--data-shape", type=positive_int, default=300, help="augmented image size (pixels)")
    show.add_argument("--count", type=positive_int, default=16, help="number of images (default 16)")
    show.add_argument("--columns", type=positive_int, default=4, help="images per row (default 4)")
    show.add_argument("--seed", type=int, default=0, help="which images, and their augmentation")
    show.add_argument(
        "--out", help="the JPEG to write (default: <dataset>_groundtruth.jpg or _augmented.jpg here)"
    )
    show.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def default_out(dataset_name: str, source: str, augmented: bool) -> Path:
    """``<dataset name>_groundtruth.jpg`` / ``_augmented.jpg`` in the current folder."""
    stem = dataset_name or Path(str(source).rstrip("/\\")).stem or "dataset"
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "dataset"
    return Path(f"{stem}_{'augmented' if augmented else 'groundtruth'}.jpg")


def _check_out(out: Path, overwrite: bool) -> None:
    if out.suffix.lower() not in (".jpg", ".jpeg"):
        raise ConfigError(f"--out {out}: the picture is a JPEG; give a .jpg file")
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; give a .jpg file")
    if out.exists() and not overwrite:
        raise ConfigError(f"{out} exists; choose another --out or add --overwrite")
    if not out.parent.is_dir():
        raise ConfigError(f"--out {out}: the folder {out.parent} does not exist; create it first")


def run_show(args: argparse.Namespace) -> int:
    """Write the grid ``args`` ask for and print its path."""
    from multibox.data.formats import load_dataset
    from multibox.data.show import augmented_grid, ground_truth_grid
    from multibox.errors import DataError

    augmented = bool(getattr(args, "augmented", False))
    if args.out is not None:
        _check_out(Path(args.out), args.overwrite)  # before reading a possibly large dataset
    dataset = load_dataset(args.path, args.split, args.format, args.classes)
    if len(dataset) == 0:
        raise DataError(f"{args.path}: no images to show; check the path and --split")
    out = Path(args.out) if args.out is not None else default_out(dataset.name, args.path, augmented)
    if args.out is None:
        _check_out(out, args.overwrite)
    columns = getattr(args, "columns", 4)
    if augmented:
        from multibox.data.augment import TrainAugmentation

        shape = getattr(args, "data_shape", 300)
        grid = augmented_grid(
            dataset, TrainAugmentation(data_shape=(shape, shape)), args.count, columns, args.seed
        )
    else:
        grid = ground_truth_grid(dataset, args.count, columns, args.seed)
    partial = out.with_name(out.name + ".partial")
    grid.save(partial, format="JPEG", quality=90)
    partial.replace(out)
    print(out)
    return 0
