"""The ``multibox`` command line: thin, it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import sys

from multibox import __version__

PLANNED_COMMANDS = {
    "train": "train an SSD on a VOC / COCO / YOLO dataset",
    "evaluate": "VOC07 / VOC area / COCO mAP of a checkpoint",
    "detect": "draw detections on images",
    "export": "ONNX / TorchScript with detection inside",
}


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    data = sub.add_parser("data", help="check and convert datasets").add_subparsers(dest="data_command")
    data.required = True
    check = data.add_parser(
        "check",
        help="report bad boxes and images (exit code 1 when something would break training)",
        description="Check a dataset: unreadable/truncated images, wrong extensions, EXIF rotation, non-RGB "
        "images, degenerate boxes, boxes outside the image, annotation/image size mismatches, unknown "
        "classes, images without boxes, duplicate images.",
    )
    check.add_argument("path", help="VOC folder, COCO JSON, YOLO folder, .lst file or shapes[:N]")
    check.add_argument("--split", help="image set (VOC ImageSets/Main/<split>.txt, YOLO images/<split>)")
    check.add_argument("--format", choices=("voc", "coco", "yolo", "lst", "shapes"), help="default: detected")
    check.add_argument("--classes", help="class-name file (one per line)")
    check.add_argument("--fast", action="store_true", help="read image headers only, do not decode")
    check.add_argument("--examples", type=int, default=5, help="examples listed per kind of problem")

    convert = data.add_parser("convert", help="convert a dataset to another format")
    convert.add_argument("source", help="VOC folder, COCO JSON, YOLO folder, .lst file or shapes[:N]")
    convert.add_argument("target", help="output folder (or .json / .lst file)")
    convert.add_argument("--to", required=True, choices=("voc", "coco", "yolo", "lst"), dest="to_format")
    convert.add_argument("--split", help="image set to read, and the name of the written split")
    convert.add_argument("--format", choices=("voc", "coco", "yolo", "lst", "shapes"), help="source format")
    convert.add_argument("--classes", help="class-name file (one per line)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multibox", description="Single Shot MultiBox Detector (SSD).")
    parser.add_argument("--version", action="version", version=f"multibox {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the MultiBox operators on a small built-in example and print the result")
    _add_data_commands(sub)
    inspect = sub.add_parser("inspect", help="inspect networks").add_subparsers(dest="inspect_command")
    inspect.required = True
    model = inspect.add_parser("model", help="feature maps, anchors, parameters and GFLOPs of a preset")
    model.add_argument("name", help="network preset, e.g. vgg16_reduced, resnet50, mobilenet_v2")
    model.add_argument("--data-shape", type=int, default=300)
    model.add_argument("--num-classes", type=int, default=20)
    return parser


def _data_check(args: argparse.Namespace) -> int:
    from multibox.data.formats import load_dataset
    from multibox.data.validate import check_dataset

    dataset = load_dataset(args.path, args.split, args.format, args.classes)
    report = check_dataset(dataset, decode=not args.fast, progress=sys.stderr.isatty())
    print(report.format(args.examples))
    return 1 if report.fatal else 0


def _data_convert(args: argparse.Namespace) -> int:
    from multibox.data.formats import load_dataset, save_dataset

    dataset = load_dataset(args.source, args.split, args.format, args.classes)
    written = save_dataset(dataset, args.target, args.to_format, args.split or "all")
    print(f"wrote {len(dataset)} images, {dataset.num_objects} boxes as {args.to_format} to {written}")
    return 0


def _inspect_model(args: argparse.Namespace) -> int:
    from multibox.model.inspect import inspect_model

    print(inspect_model(args.name, data_shape=args.data_shape, num_classes=args.num_classes))
    return 0


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "demo":
        from multibox.demo_ops import run_demo

        run_demo()
        return 0
    if args.command == "data":
        return _data_check(args) if args.data_command == "check" else _data_convert(args)
    if args.command == "inspect":
        return _inspect_model(args)
    parser.print_help()
    print("\nstill to come:")
    for name, text in PLANNED_COMMANDS.items():
        print(f"  {name:<10} {text}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return _run(args, parser)
    except (FileNotFoundError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"multibox: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
