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
    "serve": "HTTP detection service",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multibox", description="Single Shot MultiBox Detector (SSD).")
    parser.add_argument("--version", action="version", version=f"multibox {__version__}")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("demo", help="run the MultiBox operators on a small built-in example and print the result")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        from multibox.demo_ops import run_demo

        run_demo()
        return 0
    parser.print_help()
    print("\nstill to come:")
    for name, text in PLANNED_COMMANDS.items():
        print(f"  {name:<10} {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
