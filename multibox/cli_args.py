"""Argument types of the ``multibox`` command line (each refuses a bad value with a message argparse prints),
and the arguments every command that reads a dataset takes."""

from __future__ import annotations

import argparse
import math


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def fraction(text: str) -> float:
    """A number in [0, 1] (score thresholds)."""
    value = _number(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside [0, 1]")
    return value


def overlap(text: str) -> float:
    """An IoU threshold in (0, 1]."""
    value = _number(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"{text} is outside (0, 1]")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, counts)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not >= 1")
    return value


def positive_float(text: str) -> float:
    """A number > 0 (sizes in MiB or megapixels, seconds)."""
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not > 0")
    return value


def port(text: str) -> int:
    """A TCP port, 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text} is outside 1-65535")
    return value


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line (``multibox detect: error: ...; see --help``)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_dataset_source(parser: argparse.ArgumentParser) -> None:
    """``path``, ``--split``, ``--format`` and ``--classes``: a dataset as ``load_dataset`` reads it."""
    from multibox.data.formats import readable_formats

    parser.add_argument(
        "path",
        help="VOC folder, COCO JSON or root, YOLO folder, Ultralytics data.yaml, .lst, .rec or shapes[:N]",
    )
    parser.add_argument("--split", help="image set (VOC ImageSets/Main/<split>.txt, YOLO images/<split>)")
    parser.add_argument("--format", choices=readable_formats(), help="default: detected")
    parser.add_argument("--classes", help="class-name file (one per line)")
