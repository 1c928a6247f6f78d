"""The table of export formats: the one list that export, ``open_detector`` and the command line read."""

from __future__ import annotations

import pytest

import multibox.deploy as deploy
from multibox.cli import build_parser
from multibox.deploy.formats import EXPORT_FORMATS, export_format, format_of_file, open_detector
from multibox.errors import ConfigError, DataError


def test_suffixes_name_their_format_and_anything_else_is_a_checkpoint():
    assert format_of_file("m.onnx").name == "onnx"
    assert (
        format_of_file("M.TS").name == "torchscript" and format_of_file("m.torchscript").name == "torchscript"
    )
    assert format_of_file("best.pt") is None and format_of_file("model") is None


def test_the_command_line_offers_every_format():
    parser = build_parser()
    args = parser.parse_args(["export", "c.pt", "--format", "torchscript"])
    assert args.format == "torchscript"
    for name in EXPORT_FORMATS:
        assert getattr(parser.parse_args(["detect", "a.jpg", f"--{name}", "f"]), name) == "f"
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "c.pt", "--format", "tflite"])


def test_an_unknown_format_lists_the_choices():
    with pytest.raises(ConfigError, match="one of onnx, torchscript, got 'tflite'"):
        export_format("tflite")


def test_open_detector_picks_the_runner_by_suffix(tmp_path):
    with pytest.raises(FileNotFoundError):
        open_detector(tmp_path / "missing.onnx")
    fake = tmp_path / "fake.ts"
    fake.write_bytes(b"not a model")
    with pytest.raises(DataError, match="not a TorchScript file"):
        open_detector(fake)
    with pytest.raises(DataError, match="is not a file torch.save wrote"):
        open_detector(fake.rename(tmp_path / "fake.pt"))


def test_every_name_the_package_offers_loads():
    for name in deploy.__all__:
        assert getattr(deploy, name) is not None
    with pytest.raises(AttributeError):
        deploy.no_such_name  # noqa: B018
