"""``multibox export``: the command-line side of :func:`multibox.deploy.export_checkpoint`."""

from __future__ import annotations

import argparse

from multibox.cli_args import fraction, overlap, positive_int


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


def run_export(args: argparse.Namespace) -> int:
    from multibox.deploy import export_checkpoint

    settings = {
        "threshold": args.thresh,
        "nms_threshold": args.nms,
        "nms_topk": args.topk,
        "max_detections": args.max_detections,
        "per_class": False if args.mxnet_detection else None,
        "force_suppress": True if args.force_suppress else None,
    }
    try:
        result = export_checkpoint(
            args.checkpoint,
            args.format,
            out=args.out,
            data_shape=args.data_shape,
            dynamic_batch=args.dynamic_batch,
            batch_size=args.batch_size,
            settings=settings,
        )
    except ImportError as error:
        raise ValueError(f"{error.name or error} is missing: pip install 'multibox[export]'") from error
    size_mb = result.path.stat().st_size / 2**20
    print(f"wrote {result.path} ({size_mb:.1f} MB) and {result.sidecar}")
    print(f"check against PyTorch: {result.check}")
    return 0 if result.check.ok else 1
