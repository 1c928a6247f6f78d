"""``multibox export``: the command-line side of :func:`multibox.deploy.export_checkpoint`, and of the INT8 and
FP16 files of :mod:`multibox.deploy.quantize`."""

from __future__ import annotations

import argparse
import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from multibox.cli_args import fraction, overlap, positive_int
from multibox.errors import ConfigError

DEFAULT_CALIBRATION_IMAGES = 100
DEFAULT_CHECK_IMAGES = 200
DEFAULT_MAX_MAP_DROP = 0.01
_SETTING_FLAGS = {
    "threshold": "--thresh",
    "nms_threshold": "--nms",
    "nms_topk": "--topk",
    "max_detections": "--max-detections",
    "per_class": "--mxnet-detection",
    "force_suppress": "--force-suppress",
}
_INT8_ONLY = (
    "calibration",
    "calibration_split",
    "calibration_images",
    "calibration_method",
    "check_images",
    "max_map_drop",
)


def add_export_command(sub: argparse._SubParsersAction) -> None:
    from multibox.deploy.formats import EXPORT_FORMATS

    export = sub.add_parser(
        "export",
        help="write a checkpoint as one ONNX or TorchScript file with preprocessing, decoding and NMS inside",
        description="Export a training checkpoint. The file takes uint8 RGB images (N, 3, H, W) of any size "
        "and returns boxes, scores, classes and a count per image; a JSON sidecar (class names, input size, "
        "thresholds) is written next to it, and the file is checked against PyTorch before the command ends.",
    )
    export.add_argument("checkpoint", help="a .pt file written by multibox train")
    export.add_argument("--format", choices=tuple(EXPORT_FORMATS), default="onnx")
    export.add_argument(
        "--data-shape", type=positive_int, help="network input size (default: the checkpoint's)"
    )
    export.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: fixed)")
    export.add_argument("--batch-size", type=positive_int, default=1, help="the fixed batch size (default 1)")
    export.add_argument("--out", help="output file (default: next to the checkpoint)")
    export.add_argument(
        "--thresh", type=fraction, help="minimum score kept in the file (default: the model's)"
    )
    export.add_argument("--nms", type=overlap, help="NMS IoU threshold (default: the model's)")
    export.add_argument(
        "--topk", type=positive_int, help="candidates per class before NMS (default: the model's)"
    )
    export.add_argument("--max-detections", type=positive_int, help="rows per image (default: the model's)")
    export.add_argument(
        "--mxnet-detection", action="store_true", help="one class per anchor, as the original"
    )
    export.add_argument("--force-suppress", action="store_true", help="NMS across classes")
    _add_precision_options(export)


def _add_precision_options(export: argparse.ArgumentParser) -> None:
    from multibox.deploy.quantize import CALIBRATION_METHODS

    group = export.add_argument_group("INT8 and FP16 (ONNX only; docs/deployment.md)")
    group.add_argument(
        "--int8",
        action="store_true",
        help="quantize the network to int8 (ONNX Runtime), checked on held-out images",
    )
    group.add_argument("--fp16", action="store_true", help="the network in float16, for GPUs")
    group.add_argument("--calibration", metavar="DATA", help="dataset whose images calibrate --int8")
    group.add_argument("--calibration-split", metavar="SPLIT", help="its image set or sub-set")
    group.add_argument(
        "--calibration-images",
        type=positive_int,
        help=f"first N images calibrate (default {DEFAULT_CALIBRATION_IMAGES}); the next ones check the accuracy",
    )
    group.add_argument("--calibration-method", choices=CALIBRATION_METHODS, help="default minmax")
    group.add_argument(
        "--check-images",
        type=positive_int,
        help=f"held-out images scored for the accuracy check (default: up to {DEFAULT_CHECK_IMAGES})",
    )
    group.add_argument(
        "--max-map-drop",
        type=fraction,
        help=f"largest VOC07 mAP loss accepted (default {DEFAULT_MAX_MAP_DROP}); more: no file, exit 1",
    )
    group.add_argument(
        "--keep-anyway",
        action="store_true",
        help="keep a file that fails the check, as <name>.REJECTED.onnx (still exit 1)",
    )


def _settings(args: argparse.Namespace) -> dict:
    return {
        "threshold": args.thresh,
        "nms_threshold": args.nms,
        "nms_topk": args.topk,
        "max_detections": args.max_detections,
        "per_class": False if args.mxnet_detection else None,
        "force_suppress": True if args.force_suppress else None,
    }


def run_export(args: argparse.Namespace) -> int:
    _check_precision_flags(args)
    try:
        if args.int8:
            return _export_int8(args)
        if args.fp16:
            return _export_fp16(args)
        return _export_float(args)
    except ImportError as error:
        raise ValueError(f"{error.name or error} is missing: pip install 'multibox[export]'") from error


def _check_precision_flags(args: argparse.Namespace) -> None:
    """One-line refusals of flag combinations that make no file."""
    if args.int8 and args.fp16:
        raise ConfigError("--int8 and --fp16 make two different files: export once with each")
    precision = "--int8" if args.int8 else "--fp16" if args.fp16 else None
    if precision and args.format != "onnx":
        raise ConfigError(f"{precision} makes ONNX files: use --format onnx ({args.format} stays float32)")
    if args.int8 and not args.calibration:
        raise ConfigError(
            "--int8 needs calibration images: add --calibration DATA (a dataset multibox reads, such as the "
            "training data; its first images calibrate, the next ones check the accuracy)"
        )
    if _onnx_source(args):
        _check_onnx_source_flags(args, precision)
    given = [f"--{name.replace('_', '-')}" for name in _INT8_ONLY if getattr(args, name) is not None]
    if not args.int8 and (given or args.keep_anyway):
        raise ConfigError(
            f"{', '.join(given or ['--keep-anyway'])}: only used with --int8 (add --int8 or leave it out)"
        )


def _check_onnx_source_flags(args: argparse.Namespace, precision: str | None) -> None:
    """An exported float ONNX file as CHECKPOINT: only --int8 / --fp16 make sense, its settings are baked in."""
    if precision is None:
        raise ConfigError(
            f"{args.checkpoint} is already an ONNX file: add --int8 or --fp16 to make one of those from it, "
            "or export the training checkpoint"
        )
    baked = [_SETTING_FLAGS[name] for name, value in _settings(args).items() if value is not None]
    baked += ["--data-shape"] * (args.data_shape is not None) + ["--dynamic-batch"] * args.dynamic_batch
    baked += ["--batch-size"] * (args.batch_size != 1)
    if baked:
        raise ConfigError(
            f"{', '.join(baked)}: the input size, batch size and decoding settings of {args.checkpoint} are "
            "baked in; export the training checkpoint with them instead"
        )


def _export_float(args: argparse.Namespace) -> int:
    from multibox.deploy import export_checkpoint

    result = export_checkpoint(
        args.checkpoint,
        args.format,
        out=args.out,
        data_shape=args.data_shape,
        dynamic_batch=args.dynamic_batch,
        batch_size=args.batch_size,
        settings=_settings(args),
    )
    size_mb = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({size_mb:.1f} MB) and {result.sidecar}")
    print(f"check against PyTorch: {result.check}")
    return 0 if result.check.ok else 1


@contextlib.contextmanager
def _work_folder(out: Path) -> Iterator[Path]:
    """A scratch folder next to ``out`` (the float file, the candidate), removed at the end whatever happens."""
    out.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _onnx_source(args: argparse.Namespace) -> bool:
    """Whether CHECKPOINT is an exported float ONNX file, made smaller without exporting again."""
    from multibox.deploy.formats import format_of_file

    found = format_of_file(args.checkpoint)
    return found is not None and found.name == "onnx"


def _float_file(args: argparse.Namespace, folder: Path) -> tuple[Path, dict, bool]:
    """The float ONNX file the INT8 / FP16 one is made from, its metadata and whether it passed its check:
    CHECKPOINT itself when it is an ONNX file, else CHECKPOINT exported and checked against PyTorch."""
    from multibox.deploy import OnnxDetector, export_checkpoint

    if _onnx_source(args):
        metadata = OnnxDetector(args.checkpoint).metadata
        if metadata.get("precision", "float32") != "float32":
            raise ConfigError(
                f"{args.checkpoint} is already {metadata['precision']}: start from the checkpoint or the float file"
            )
        return Path(args.checkpoint), metadata, True
    result = export_checkpoint(
        args.checkpoint,
        "onnx",
        out=folder / "float.onnx",
        data_shape=args.data_shape,
        dynamic_batch=args.dynamic_batch,
        batch_size=args.batch_size,
        settings=_settings(args),
    )
    print(f"float ONNX check against PyTorch: {result.check}")
    return result.path, result.metadata, result.check.ok


def _default_out(args: argparse.Namespace, precision: str) -> Path:
    return Path(args.out) if args.out else Path(args.checkpoint).with_suffix(f".{precision}.onnx")


def _write_sidecar(path: Path, metadata: dict) -> Path:
    import json

    sidecar = path.with_name(path.name + ".json")
    sidecar.write_text(json.dumps(metadata, indent=2) + "\n")
    return sidecar


def _export_fp16(args: argparse.Namespace) -> int:
    import os

    from multibox.deploy.quantize import convert_fp16

    out = _default_out(args, "fp16")
    with _work_folder(out) as folder:
        float_path, float_metadata, float_ok = _float_file(args, folder)
        metadata = {**float_metadata, "precision": "fp16"}
        os.replace(convert_fp16(float_path, folder / "fp16.onnx", metadata), out)
    sidecar = _write_sidecar(out, metadata)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MB, float16 network for GPUs) and {sidecar}")
    print(_fp16_runs_here(out))
    return 0 if float_ok else 1


def _fp16_runs_here(path: Path) -> str:
    """Whether ONNX Runtime's CPU provider runs the FP16 file (it has float16 kernels for few operators)."""
    import numpy as np

    from multibox.deploy.onnx_detector import OnnxDetector
    from multibox.errors import DataError

    try:
        detector = OnnxDetector(path)
        detector.run(np.zeros((detector.batch_size or 1, 3, *detector.data_shape), np.uint8))
    except (DataError, RuntimeError) as error:
        reason = " ".join(str(error).split())[:120]
        return f"not run here: ONNX Runtime's CPU provider cannot run it ({reason}); run it on a GPU"
    return "runs in ONNX Runtime's CPU provider too (float16 is meant for GPUs: CUDAExecutionProvider)"


def _calibration_data(args: argparse.Namespace):
    """The calibration and held-out parts of ``--calibration`` and how the messages name it."""
    from multibox.checkpoint import read_checkpoint
    from multibox.data import check_dataset, clean_for_training, load_dataset, require_images
    from multibox.deploy import OnnxDetector
    from multibox.deploy.calibration import split_for_calibration

    if _onnx_source(args):
        class_names = OnnxDetector(args.checkpoint).class_names
    else:
        class_names = list(read_checkpoint(args.checkpoint)["class_names"])
    split = args.calibration_split
    what = f"{args.calibration}" + (f" (split {split})" if split else "")
    dataset = load_dataset(args.calibration, split, class_names=class_names)
    report = check_dataset(dataset, decode=False)
    dataset, summary = clean_for_training(dataset, report)
    print(f"calibration data: {summary}")
    require_images(dataset, what, report)
    calibration, held_out = split_for_calibration(
        dataset,
        args.calibration_images or DEFAULT_CALIBRATION_IMAGES,
        args.check_images or DEFAULT_CHECK_IMAGES,
        what,
    )
    return calibration, held_out, what


def _export_int8(args: argparse.Namespace) -> int:
    from multibox.deploy.calibration import CalibrationImages
    from multibox.deploy.quantize import place_checked, quantize_int8, store_metadata

    out = _default_out(args, "int8")
    method = args.calibration_method or "minmax"
    calibration, held_out, what = _calibration_data(args)
    with _work_folder(out) as folder:
        float_path, float_metadata, float_ok = _float_file(args, folder)
        metadata = {
            **float_metadata,
            "precision": "int8",
            "quantization": {
                "tool": "onnxruntime.quantization.quantize_static (QDQ, uint8 activations, int8 per-channel weights)",
                "calibration_data": what,
                "calibration_images": len(calibration),
                "calibration_method": method,
            },
        }
        reader = CalibrationImages(
            calibration.records, tuple(float_metadata["data_shape"]), float_metadata["batch_size"] or 1
        )
        candidate = quantize_int8(float_path, folder / "int8.onnx", reader, method)
        max_drop = DEFAULT_MAX_MAP_DROP if args.max_map_drop is None else args.max_map_drop
        check = _accuracy_check(float_path, candidate, held_out, max_drop)
        print(
            f"calibrated on the first {len(calibration)} images of {what} ({method}); accuracy check on the "
            f"next {check.images}"
        )
        print(check)
        float_mb = float_path.stat().st_size / 2**20
        metadata["accuracy_check"] = check.to_dict()
        store_metadata(candidate, metadata)
        place_checked(candidate, out, check, args.keep_anyway)
    sidecar = _write_sidecar(out, metadata)
    size_mb = out.stat().st_size / 2**20
    print(f"wrote {out} ({size_mb:.1f} MB, float {float_mb:.1f} MB; int8 network) and {sidecar}")
    return 0 if float_ok else 1


def _accuracy_check(float_path: Path, int8_path: Path, held_out, max_drop: float):
    """VOC07 mAP of both files on the held-out images, scored as ``multibox evaluate`` scores a file."""
    from multibox.data import make_loader
    from multibox.deploy.onnx_detector import OnnxDetector
    from multibox.deploy.quantize import AccuracyCheck
    from multibox.engine.evaluate import evaluate

    maps, images = [], 0
    for path in (float_path, int8_path):
        detector = OnnxDetector(path)
        loader = make_loader(held_out, 8, train=False, data_shape=detector.data_shape, return_indices=True)
        scored = evaluate(detector, loader, detector.class_names)
        maps.append(scored["mAP_voc07"])
        images = scored["images"]
    return AccuracyCheck(images, maps[0], maps[1], max_drop)
