"""``multibox data show``: writes a JPEG grid and prints its path; refuses to overwrite without --overwrite."""

from __future__ import annotations

import argparse

import numpy as np
import pytest
from PIL import Image

from multibox.cli_data_show import add_show_command, default_out, run_show
from multibox.errors import ConfigError, DataError


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    data = parser.add_subparsers(dest="data_command")
    add_show_command(data)
    return parser.parse_args(["show", *argv])


def test_writes_the_ground_truth_grid_and_prints_its_path(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert run_show(_parse(["shapes:6", "--count", "4", "--columns", "2"])) == 0
    out = tmp_path / "shapes-0_groundtruth.jpg"
    assert capsys.readouterr().out.strip() == out.name
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (2 * 256, 2 * 256)
    assert not list(tmp_path.glob("*.partial"))


def test_refuses_to_overwrite_unless_asked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "mine.jpg"
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="exists; choose another --out or add --overwrite"):
        run_show(_parse(["shapes:3", "--out", str(out)]))
    assert out.read_bytes() == b"keep me"
    default = tmp_path / "shapes-0_augmented.jpg"
    default.write_bytes(b"old")
    with pytest.raises(ConfigError, match="shapes-0_augmented.jpg exists"):
        run_show(_parse(["shapes:3", "--augmented"]))
    assert default.read_bytes() == b"old"
    assert run_show(_parse(["shapes:3", "--out", str(out), "--overwrite", "--count", "1"])) == 0
    with Image.open(out) as image:
        assert image.format == "JPEG" and image.size == (256, 256)


def test_augmented_grid_at_the_data_shape_and_reproducible(tmp_path):
    first, second = tmp_path / "a.jpg", tmp_path / "b.jpg"
    args = ["shapes:5", "--augmented", "--data-shape", "128", "--count", "3", "--seed", "4"]
    assert run_show(_parse([*args, "--out", str(first)])) == 0
    assert run_show(_parse([*args, "--out", str(second)])) == 0
    with Image.open(first) as a, Image.open(second) as b:
        assert a.size == (3 * 128, 128)
        assert np.array_equal(np.asarray(a), np.asarray(b))


def test_bad_out_and_empty_dataset_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="give a .jpg file"):
        run_show(_parse(["shapes:3", "--out", str(tmp_path / "grid.png")]))
    with pytest.raises(ConfigError, match="does not exist"):
        run_show(_parse(["shapes:3", "--out", str(tmp_path / "missing" / "grid.jpg")]))
    empty = tmp_path / "empty.lst"
    empty.write_text("")
    with pytest.raises(DataError):
        run_show(_parse([str(empty), "--out", str(tmp_path / "grid.jpg")]))


def test_default_out_names_the_dataset():
    assert str(default_out("voc 2007/test", "x", False)) == "voc_2007_test_groundtruth.jpg"
    assert str(default_out("", "/data/bccd/", True)) == "bccd_augmented.jpg"
