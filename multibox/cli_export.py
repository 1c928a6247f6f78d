"""``multibox export``: the command-line side of :func:`multibox.deploy.export_checkpoint`."""

from __future__ import annotations

import argparse

from multibox.cli_args import fraction, overlap, positive_int


def add_export_command(sub: argparse._SubParsersAction) -> None:
    export = sub.add_parser(
        "export",
        help="write a checkpoint as one ONNX or TorchScript file with preprocessing, decoding and NMS inside",
        description="Export a training checkpoint. The file takes uint8 RGB images (N, 3, H, W) of any size "
        "and returns boxes, scores, classes and a count per image; a JSON sidecar (class names, input size, "
        "thresholds) is written next to it, and the file is checked against PyTorch before the command ends.",
    )
    export.add_argument("checkpoint", help="a .pt file written by multibox train")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument(
        "--data-shape", type=positive_int, help="network input size (default: the checkpoint's)"
    )
    export.add_argument("--dynamic-batch", action="store_true", help="any batch size (default: fixed)")
    export.add_argument("--batch-size", type=positive_int, default=1, help="the fixed batch size (default 1)")
    export.add_argument("--out", help="output file (default: next to the checkpoint)")
    export.add_argument("--thresh", type=fraction, default=0.01, help="minimum score kept in the file")
    export.add_argument("--nms", type=overlap, default=0.45, help="NMS IoU threshold")
    export.add_argument("--topk", type=positive_int, default=400, help="candidates per class before NMS")
    export.add_argument("--max-detections", type=positive_int, default=200, help="rows per image")
    export.add_argument(
        "--mxnet-detection", action="store_true", help="one class per anchor, as the original"
    )
    export.add_argument("--force-suppress", action="store_true", help="NMS across classes")


def run_export(args: argparse.Namespace) -> int:
    from multibox.deploy import DetectionSettings, export_checkpoint

    settings = DetectionSettings(
        threshold=args.thresh,
        nms_threshold=args.nms,
        nms_topk=args.topk,
        per_class=not args.mxnet_detection,
        force_suppress=args.force_suppress,
        max_detections=args.max_detections,
    )
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
