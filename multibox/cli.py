"""The ``multibox`` command line: thin, it parses arguments and calls the library."""

from __future__ import annotations

import argparse
import os
import sys

from multibox.cli_args import (
    OneLineParser,
    add_dataset_source,
    fraction,
    overlap,
    port,
    positive_float,
    positive_int,
)
from multibox.cli_benchmark import add_benchmark_command, run_benchmark
from multibox.cli_data_anchors import add_anchors_command, run_anchors
from multibox.cli_data_show import add_show_command, run_show
from multibox.cli_detect import add_detect_command, run_detect
from multibox.cli_export import add_export_command, run_export
from multibox.cli_weights import add_weights_command, run_weights
from multibox.version import __version__


def _add_data_commands(sub: argparse._SubParsersAction) -> None:
    from multibox.data.formats import readable_formats, writable_formats

    data = sub.add_parser("data", help="check and convert datasets").add_subparsers(dest="data_command")
    data.required = True
    check = data.add_parser(
        "check",
        help="report bad boxes and images (exit code 1 when something would break training)",
        description="Check a dataset: unreadable/truncated images, wrong extensions, EXIF rotation, non-RGB "
        "images, degenerate boxes, boxes outside the image, annotation/image size mismatches, unknown "
        "classes, images without boxes, duplicate images.",
    )
    add_dataset_source(check)
    check.add_argument("--fast", action="store_true", help="read image headers only, do not decode")
    check.add_argument("--examples", type=positive_int, default=5, help="examples listed per kind of problem")

    convert = data.add_parser(
        "convert",
        help="convert a dataset to another format (never writes into its source)",
        description="Convert a dataset. The source is only read: a target that is the source, lies inside it "
        "or holds it is refused, and so is a target that already holds files, unless --overwrite.",
    )
    convert.add_argument(
        "source", help="VOC folder, COCO JSON or root, YOLO folder, .lst, .rec or shapes[:N]"
    )
    convert.add_argument("target", help="output folder (or .json / .lst / .rec file), outside the source")
    convert.add_argument("--to", required=True, choices=writable_formats(), dest="to_format")
    convert.add_argument("--split", help="image set to read, and the name of the written split")
    convert.add_argument("--format", choices=readable_formats(), help="source format")
    convert.add_argument("--classes", help="class-name file (one per line)")
    add_show_command(data)
    add_anchors_command(data)
    convert.add_argument(
        "--overwrite",
        action="store_true",
        help="write into a target that already holds files (files of the same name are replaced, others kept)",
    )


def _add_evaluate_command(sub: argparse._SubParsersAction) -> None:
    evaluate = sub.add_parser("evaluate", help="VOC07 / VOC area (and COCO) mAP of a checkpoint on a dataset")
    evaluate.add_argument(
        "--checkpoint", required=True, help="a .pt file written by multibox train, or an exported file"
    )
    evaluate.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="VOC folder, COCO JSON or root, YOLO folder, .lst, .rec or shapes[:N]; several are scored as one set",
    )
    evaluate.add_argument("--split", help="image set (VOC, COCO root) or sub-set, of every --data")
    evaluate.add_argument(
        "--use-difficult",
        action="store_true",
        help="score difficult objects as ordinary ground truth (default: ignored, as the VOC devkit)",
    )
    evaluate.add_argument("--batch-size", type=positive_int, default=16)
    evaluate.add_argument("--nms", type=overlap, help="NMS IoU threshold (default: the detector's, 0.45)")
    evaluate.add_argument("--overlap", type=overlap, default=0.5, help="IoU of a true positive")
    evaluate.add_argument(
        "--mxnet-detection", action="store_true", help="one class per anchor, as the original"
    )
    evaluate.add_argument("--force-suppress", action="store_true", help="NMS across classes")
    evaluate.add_argument("--coco", action="store_true", help="also COCO AP (needs pycocotools)")
    evaluate.add_argument(
        "--coco-results",
        metavar="FILE",
        help="write the detections as COCO results JSON (the dataset's own image and category ids for COCO "
        "files); implies --coco",
    )
    evaluate.add_argument(
        "--out",
        default="evaluation",
        help="folder for the PR curves, confusion matrix and per-class tables (default: evaluation)",
    )
    evaluate.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _add_run_commands(sub: argparse._SubParsersAction) -> None:
    quick = sub.add_parser(
        "quickstart",
        help="generate the synthetic shapes dataset, train a small SSD on it (a few minutes on a CPU), "
        "evaluate and draw the detections",
    )
    quick.add_argument("--out", default="runs/quickstart", help="output folder (default: runs/quickstart)")
    quick.add_argument(
        "--time-budget",
        type=positive_float,
        default=170.0,
        help="seconds for training and its evaluation (default 170); the schedule fits inside them",
    )
    quick.add_argument(
        "--epochs", type=positive_int, help="train this many epochs instead, however long they take"
    )

    train = sub.add_parser(
        "train",
        help="train an SSD (settings from a YAML file and/or key=value overrides)",
        description="Train an SSD. Every setting of multibox.engine.config.TrainConfig can be given in a YAML "
        "file (--config) and overridden as key=value, e.g. "
        "`multibox train train_data=../data/VOC2007 network=vgg16_reduced batch_size=16 out_dir=runs/voc`.",
    )
    train.add_argument("--config", help="YAML file of settings")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="settings overriding the file")

    _add_evaluate_command(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="multibox", description="Single Shot MultiBox Detector (SSD).")
    parser.add_argument("--version", action="version", version=f"multibox {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the MultiBox operators on a small built-in example and print the result")
    _add_run_commands(sub)
    add_detect_command(sub)
    _add_data_commands(sub)
    add_export_command(sub)
    add_benchmark_command(sub)
    add_weights_command(sub)
    _add_serve_command(sub)
    inspect = sub.add_parser("inspect", help="inspect networks").add_subparsers(dest="inspect_command")
    inspect.required = True
    model = inspect.add_parser("model", help="feature maps, anchors, parameters and GFLOPs of a preset")
    model.add_argument("name", help="network preset, e.g. vgg16_reduced, resnet50, mobilenet_v2")
    model.add_argument("--data-shape", type=positive_int, default=300)
    model.add_argument("--num-classes", type=positive_int, default=20)
    return parser


def _data_check(args: argparse.Namespace) -> int:
    from multibox.data.formats import load_dataset
    from multibox.data.validate import check_dataset, require_images
    from multibox.errors import DataError

    dataset = load_dataset(args.path, args.split, args.format, args.classes)
    report = check_dataset(dataset, decode=not args.fast, progress=sys.stderr.isatty())
    print(report.format(args.examples))
    try:
        require_images(dataset, args.path, report)
    except DataError as error:
        print(f"multibox: error: {error}", file=sys.stderr)
        return 1
    return 1 if report.fatal else 0


def _data_convert(args: argparse.Namespace) -> int:
    from multibox.data.convert import convert_dataset

    conversion = convert_dataset(
        args.source, args.target, args.to_format, args.split, args.format, args.classes, args.overwrite
    )
    print(conversion.summary(args.to_format))
    return 0


def _inspect_model(args: argparse.Namespace) -> int:
    from multibox.model.inspect import inspect_model

    print(inspect_model(args.name, data_shape=args.data_shape, num_classes=args.num_classes))
    return 0


def _add_serve_command(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser(
        "serve",
        help="HTTP API (POST /v1/detect) and a web page for a detector (needs multibox[serve])",
        description="Serve a detector over HTTP: POST /v1/detect takes an image upload (multipart field "
        "'file') and answers JSON detections, GET /healthz, and GET / is a page to try it in a browser.",
    )
    serve.add_argument("path", help="a checkpoint written by multibox train, or an exported .onnx file")
    serve.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: this machine only)"
    )
    serve.add_argument("--port", type=port, default=8000)
    serve.add_argument(
        "--max-upload-mb", type=positive_float, default=20.0, help="largest upload in MiB (default 20)"
    )
    serve.add_argument(
        "--max-megapixels", type=positive_float, default=50.0, help="largest image (default 50)"
    )
    serve.add_argument(
        "--threshold", type=fraction, help="default minimum score (default: the detector's tuned threshold)"
    )
    serve.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)")


def _serve(args: argparse.Namespace) -> int:
    import multibox.serve as serve

    missing = serve.missing_dependencies()
    if missing:
        print(
            f"multibox: error: serve needs {', '.join(missing)}: pip install 'multibox[serve]'",
            file=sys.stderr,
        )
        return 2
    from multibox.engine.distributed import pick_device

    serve.run_server(
        args.path,
        args.host,
        args.port,
        device=str(pick_device(args.device)),
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_pixels=int(args.max_megapixels * 1e6),
        default_threshold=args.threshold,
    )
    return 0


def _quickstart(args: argparse.Namespace) -> int:
    from multibox.engine.quickstart import run_quickstart

    if args.epochs is not None:
        summary = run_quickstart(args.out, time_budget=None, epochs=args.epochs)
    else:
        summary = run_quickstart(args.out, time_budget=args.time_budget)
    print(
        f"quickstart: VOC07 mAP {summary['mAP_voc07']:.4f} (area {summary['mAP_area']:.4f}) on held-out "
        f"synthetic images after {summary['epochs']} epochs, {summary['train_seconds']:.0f} s"
    )
    out = summary["out_dir"]
    print(f"  checkpoint      {summary['checkpoint']}")
    print(f"  detections      {out}/val_detections.jpg (and {out}/val_detections/)")
    print(f"  curves          {out}/loss.png, {out}/map.png")
    print(f"  log             {out}/log.csv, {out}/summary.json")
    return 0


def _train(args: argparse.Namespace) -> int:
    from multibox.engine.config import load_config
    from multibox.engine.train import train

    result = train(load_config(args.config, args.overrides))
    final = result.final_metrics
    line = (
        f"trained {final.get('epoch', 0)} epochs into {result.out_dir}; last checkpoint {result.checkpoint}"
    )
    if final.get("mAP_voc07") is not None:
        line += f"; VOC07 mAP {final['mAP_voc07']:.4f}"
    print(line)
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from multibox.data import check_dataset, clean_for_training, make_loader, require_images
    from multibox.data.concat import load_sources
    from multibox.deploy.formats import format_of_file, open_detector
    from multibox.engine.distributed import pick_device
    from multibox.engine.evaluate import evaluate
    from multibox.errors import DataError
    from multibox.inference import load_detector

    device = pick_device(args.device)
    if format_of_file(args.checkpoint) is not None:
        model = open_detector(args.checkpoint, device)  # the settings baked into the file must match
        class_names = model.class_names
    else:
        model, class_names = load_detector(args.checkpoint, device)
    dataset = load_sources(args.data, args.split, class_names=class_names)
    report = check_dataset(dataset, decode=False)
    dataset, summary = clean_for_training(dataset, report)
    print(summary)
    data = ", ".join(args.data)
    require_images(dataset, f"{data} (split {args.split})", report)
    if dataset.num_objects == 0:
        raise DataError(
            f"{data} has no boxes of the detector's classes ({', '.join(class_names)}), so there is nothing "
            "to score: evaluate on data labelled with these classes"
        )
    loader = make_loader(
        dataset,
        args.batch_size,
        train=False,
        data_shape=model.data_shape,
        return_indices=True,
    )
    result = evaluate(
        model,
        loader,
        class_names,
        device,
        iou_threshold=args.overlap,
        settings=model.detection.updated(
            nms_threshold=args.nms,
            per_class=False if args.mxnet_detection else None,
            force_suppress=True if args.force_suppress else None,
        ),
        image_sizes=[(r.width, r.height) for r in dataset.records],
        coco=args.coco or bool(args.coco_results),
        image_ids=dataset.source_ids(),
        category_ids=dataset.category_ids,
        progress=True,
        diagnostics=True,
        use_difficult=args.use_difficult,
    )
    print(result["table"])
    print(
        f"mAP VOC07 {result['mAP_voc07']:.4f}  VOC area {result['mAP_area']:.4f}  "
        f"({result['images']} images, {result['images_per_second']:.1f} img/s)"
    )
    if result["excluded"]:
        print(
            f"excluded {len(result['excluded'])} unreadable images from the score: "
            + ", ".join(result["excluded"])
        )
    if args.coco or args.coco_results:
        print(
            "COCO "
            + "  ".join(
                f"{k[5:]} {v:.4f}" for k, v in result.items() if k.startswith("coco_") and k != "coco_results"
            )
        )
    _write_evaluation(result["diagnostics"], class_names, Path(args.out))
    if args.coco_results:
        path = Path(args.coco_results)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result["coco_results"]))
        print(f"{len(result['coco_results'])} detections in COCO results format: {path}")
    return 0


def _write_evaluation(diagnostics: dict, class_names: list[str], out) -> None:
    """The per-class F1-best thresholds, and the diagnostics' pictures and tables in ``out``."""
    from multibox.engine.diagnostics import overall_threshold, write_diagnostics

    written = write_diagnostics(diagnostics, class_names, out)
    best = ", ".join(
        f"{name} {c['best_threshold']:.2f} (F1 {c['best_f1']:.3f})"
        for name, c in diagnostics["classes"].items()
        if c["best_threshold"] is not None
    )
    print(f"F1-best score thresholds: {best}; all classes {overall_threshold(diagnostics):.2f}")
    print("wrote " + ", ".join(str(path) for path in written))


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "quickstart":
        return _quickstart(args)
    if args.command == "train":
        return _train(args)
    if args.command == "evaluate":
        return _evaluate(args)
    if args.command == "detect":
        return run_detect(args)
    if args.command == "demo":
        from multibox.demo_ops import run_demo

        run_demo()
        return 0
    if args.command == "data":
        commands = {"check": _data_check, "convert": _data_convert, "show": run_show, "anchors": run_anchors}
        return commands[args.data_command](args)
    if args.command == "inspect":
        return _inspect_model(args)
    if args.command == "export":
        return run_export(args)
    if args.command == "benchmark":
        return run_benchmark(args)
    if args.command == "weights":
        return run_weights(args)
    if args.command == "serve":
        return _serve(args)
    parser.print_help()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The ``multibox`` command: a user's mistake or a bad file ends in one line on stderr (exit 2 for usage
    and settings, 1 for data and files); ``--debug`` or ``MULTIBOX_DEBUG=1`` shows the traceback instead."""
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or os.environ.get("MULTIBOX_DEBUG", "") not in ("", "0")
    try:
        return _run(args, parser)
    except KeyboardInterrupt:
        print("multibox: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if debug:
            raise
        code, message = _one_line(error)
        print(f"multibox: error: {message}", file=sys.stderr)
        return code


def _one_line(error: Exception) -> tuple[int, str]:
    """The exit code and the message of an error that ends a command."""
    from multibox.engine.train import NonFiniteLossError
    from multibox.errors import MultiboxError

    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    text = " ".join(text.split()) or type(error).__name__
    if isinstance(error, MultiboxError):
        return error.exit_code, text
    if isinstance(error, OSError):  # missing, unreadable or unwritable files
        return 1, text
    if isinstance(error, ValueError | KeyError):
        return 2, text
    if isinstance(error, NonFiniteLossError):
        return 1, text
    return (
        1,
        f"unexpected {type(error).__name__}: {text} (run again with --debug for the traceback and report it)",
    )


if __name__ == "__main__":
    sys.exit(main())
