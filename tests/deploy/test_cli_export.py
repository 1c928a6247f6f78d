"""``multibox export`` and ``multibox detect --onnx / --torchscript`` from the command line."""

from __future__ import annotations

import json

import pytest

from multibox.cli import main


def test_export_then_detect_with_every_runtime(bccd_checkpoint, bccd_subset, tmp_path, capsys):
    onnx_file = tmp_path / "model.onnx"
    assert main(["export", str(bccd_checkpoint), "--format", "onnx", "--out", str(onnx_file)]) == 0
    out = capsys.readouterr().out
    assert f"wrote {onnx_file}" in out and "check against PyTorch: agree" in out
    sidecar = json.loads((tmp_path / "model.onnx.json").read_text())
    assert sidecar["batch_size"] == 1 and sidecar["class_names"] == ["Platelets", "RBC", "WBC"]
    assert (
        main(["export", str(bccd_checkpoint), "--format", "torchscript", "--out", str(tmp_path / "m.ts")])
        == 0
    )

    images = sorted((bccd_subset / "JPEGImages").glob("*.jpg"))[:3]
    reports = {}
    for flag, path in [
        ("--checkpoint", bccd_checkpoint),
        ("--onnx", onnx_file),
        ("--torchscript", tmp_path / "m.ts"),
    ]:
        folder = tmp_path / flag.strip("-")
        args = ["detect", *map(str, images), flag, str(path), "--thresh", "0.4", "--out", str(folder)]
        assert main(args) == 0
        reports[flag] = json.loads((folder / "detections.json").read_text())
        assert (folder / images[0].name).is_file()
    first = reports["--checkpoint"][0]["detections"][0]  # the rows of multibox serve's answers
    assert list(first) == ["box", "score", "class_id", "class_name"]
    assert first["class_name"] == sidecar["class_names"][first["class_id"]]
    for flag in ("--onnx", "--torchscript"):
        for ours, theirs in zip(reports["--checkpoint"], reports[flag], strict=True):
            names = [[d["class_name"] for d in report["detections"]] for report in (ours, theirs)]
            assert names[0] == names[1]
            for a, b in zip(ours["detections"], theirs["detections"], strict=True):
                assert abs(a["score"] - b["score"]) <= 2e-4
                assert max(abs(x - y) for x, y in zip(a["box"], b["box"], strict=True)) <= 0.2  # pixels


def test_export_errors_are_one_line(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing.pt")]) == 1  # a file error
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:  # a usage error, refused by the argument parser
        main(["export", str(tmp_path / "missing.pt"), "--topk", "0"])
    assert exit_.value.code == 2
    assert "--topk: 0 is not >= 1" in capsys.readouterr().err
