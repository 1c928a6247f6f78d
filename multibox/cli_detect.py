"""``multibox detect``: the command-line side of :func:`multibox.inference.annotate.detect_sources` on image
files, folders, video files, cameras and stream URLs, with the original example's demo.py options."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from multibox.cli_args import fraction, overlap, positive_float, positive_int
from multibox.errors import ConfigError


def _pair(text: str, what: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2:
        raise argparse.ArgumentTypeError(f"{text!r} is not {what}")
    return positive_int(parts[0].strip()), positive_int(parts[1].strip())


def data_shape(text: str) -> tuple[int, int]:
    """``S`` or ``H,W`` (the original's ``--data-shape``) -> ``(h, w)``."""
    return _pair(text, "S or H,W") if "," in text else (positive_int(text),) * 2


def frame_resize(text: str) -> float | tuple[int, int]:
    """A factor ``F`` (> 0) or a size ``W,H`` (the original's ``--frame-resize``)."""
    return _pair(text, "F or W,H") if "," in text else positive_float(text)


def camera_index(text: str) -> int:
    """A camera index, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a camera index (0, 1, ...)")
    return int(text)


def suffix_list(text: str) -> tuple[str, ...]:
    """``jpg,.PNG`` -> ``(".jpg", ".png")``."""
    suffixes = tuple("." + s.strip().lstrip(".").lower() for s in text.split(",") if s.strip().lstrip("."))
    if not suffixes:
        raise argparse.ArgumentTypeError(f"{text!r} names no file ending (e.g. .jpg,.png)")
    return suffixes


def add_detect_command(sub: argparse._SubParsersAction) -> None:
    from multibox.deploy.formats import EXPORT_FORMATS
    from multibox.inference.frames import DEFAULT_FPS

    detect = sub.add_parser(
        "detect",
        help="draw detections on images, folders, videos, a camera or a stream, and write them as JSON",
        description="Detect objects. Images (files, or the images of a folder): an annotated copy of each and "
        "detections.json; an image that cannot be read or decoded is named on stderr and skipped, the others "
        "are still processed, and the exit code is then 1. Videos, cameras and streams: an annotated <name>.mp4 "
        f"each (the source's frames per second, {DEFAULT_FPS:g} when it does not say) and detections.jsonl, one "
        "line per frame; shown live where a display exists (q or Esc stops, as Ctrl-C stops a camera).",
    )
    detect.add_argument(
        "sources",
        nargs="*",
        metavar="SOURCE",
        help="image files, folders, video files (.mp4 .avi .mov .mkv .webm ...), a camera index (0) or a "
        "stream URL (rtsp://, http(s)://...)",
    )
    detector = detect.add_mutually_exclusive_group()
    detector.add_argument("--checkpoint", help="a .pt file written by multibox train")
    for exported in EXPORT_FORMATS.values():
        detector.add_argument(
            f"--{exported.name}",
            help=f"a file written by multibox export --format {exported.name} (runs in {exported.runtime})",
        )
    _add_detect_options(detect)


def _add_detect_options(detect: argparse.ArgumentParser) -> None:
    detect.add_argument(
        "--camera", type=camera_index, nargs="?", const=0, metavar="N", help="read camera N (default 0)"
    )
    detect.add_argument(
        "--ext",
        type=suffix_list,
        help="file endings taken from folders, e.g. .jpg,.png (default: every image)",
    )
    detect.add_argument(
        "--recursive", action="store_true", help="take files from the folders' subfolders too"
    )
    detect.add_argument(
        "--thresh",
        type=fraction,
        help="minimum score (default: the detector's, tuned on validation in training)",
    )
    detect.add_argument("--nms", type=overlap, help="NMS IoU threshold (default: the detector's, 0.45)")
    detect.add_argument("--force-suppress", action="store_true", help="NMS across classes")
    detect.add_argument(
        "--data-shape",
        type=data_shape,
        metavar="S|H,W",
        help="network input size (default: the checkpoint's; an exported file's is fixed)",
    )
    detect.add_argument(
        "--frame-resize",
        type=frame_resize,
        metavar="F|W,H",
        help="resize every frame by a factor F, or to W,H pixels, before detection (the outputs are resized)",
    )
    detect.add_argument("--no-window", action="store_true", help="never show the live window")
    detect.add_argument("--out", default="detections", help="output folder")
    detect.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _require_arguments(args: argparse.Namespace, flags: list[str]) -> None:
    missing = []
    if not args.sources and args.camera is None:
        missing.append("SOURCE (an image, folder, video, camera index or URL) or --camera")
    if not any(getattr(args, flag.lstrip("-")) for flag in flags):
        missing.append(", ".join(flags[:-1]) + " or " + flags[-1])
    if missing:
        required = "; ".join(missing)
        raise ConfigError(f"the following arguments are required: {required} (see multibox detect --help)")


def _open_detector(args: argparse.Namespace, device):
    """The detector the arguments name, decoding with ``--nms`` / ``--force-suppress`` at ``--data-shape``."""
    from multibox.deploy.formats import EXPORT_FORMATS, format_of_file
    from multibox.inference import TorchDetector

    exported = next((f for f in EXPORT_FORMATS.values() if getattr(args, f.name)), None)
    path = Path(getattr(args, exported.name) if exported else args.checkpoint)
    exported = exported or format_of_file(path)
    settings = {"nms_threshold": args.nms, "force_suppress": True if args.force_suppress else None}
    if exported is None:
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist")
        return TorchDetector(path, device, data_shape=args.data_shape, settings=settings)
    detector = exported.open(path, device)
    if args.data_shape is not None and tuple(args.data_shape) != tuple(detector.data_shape):
        h, w = detector.data_shape
        raise ConfigError(
            f"--data-shape: {path} takes {h}x{w} inputs, fixed at export; export the checkpoint again with "
            f"multibox export --data-shape {args.data_shape[0]}, or detect with the checkpoint"
        )
    flags = {"nms_threshold": "--nms", "force_suppress": "--force-suppress"}
    for name, value in settings.items():
        baked = getattr(detector.detection, name)
        if value is not None and value != baked:
            raise ConfigError(
                f"{flags[name]}: {path} was exported with {name}={baked}; export again with multibox export "
                f"{flags[name]}{'' if value is True else f' {value}'}, or detect with the checkpoint"
            )
    return detector


def run_detect(args: argparse.Namespace) -> int:
    from multibox.data.image_io import IMAGE_SUFFIXES
    from multibox.deploy.formats import EXPORT_FORMATS
    from multibox.engine.distributed import pick_device
    from multibox.inference.annotate import detect_sources
    from multibox.inference.frames import open_sources

    _require_arguments(args, ["--checkpoint", *(f"--{name}" for name in EXPORT_FORMATS)])
    unreadable = []

    def skip(error) -> None:  # named, and the other images are still processed
        unreadable.append(error)
        print(f"skipped unreadable image {error.name}: {error.reason}", file=sys.stderr)

    sources = open_sources(
        args.sources,
        camera=args.camera,
        suffixes=args.ext or IMAGE_SUFFIXES,
        recursive=args.recursive,
        resize=args.frame_resize,
        on_unreadable=skip,
    )
    try:
        detector = _open_detector(args, pick_device(args.device))
        run = detect_sources(detector, sources, args.out, threshold=args.thresh, window=not args.no_window)
    finally:
        for source in sources:
            source.close()
    if unreadable:
        total = run.images + len(unreadable)
        print(
            f"multibox: {len(unreadable)} of {total} images could not be read (named above)", file=sys.stderr
        )
    return 1 if unreadable else 0
