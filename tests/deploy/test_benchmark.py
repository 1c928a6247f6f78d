"""``multibox benchmark``: latency, images/s and peak memory per batch size, from the library and the CLI."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import multibox.deploy.benchmark as bench
from multibox.cli import main
from multibox.deploy import export_checkpoint
from multibox.deploy.benchmark import Timing, benchmark_detector, time_calls
from multibox.errors import ConfigError
from multibox.model import build_ssd
from tests.checkpoint_helpers import save_model_checkpoint

FAST = {"repeats": 2, "warmup": 1}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A ``tiny`` SSD of 2 classes at 96 px with random weights (every anchor a candidate: NMS has work)."""
    torch.manual_seed(0)
    model = build_ssd("tiny", 2, 96)
    path = tmp_path_factory.mktemp("benchmark") / "tiny.pt"
    return Path(save_model_checkpoint(model, "tiny", ["cat", "dog"], 96, path))


@pytest.fixture(scope="module")
def fixed_batch_onnx(checkpoint, tmp_path_factory):
    """The checkpoint exported to ONNX for batches of exactly 2."""
    out = tmp_path_factory.mktemp("benchmark_onnx") / "tiny_b2.onnx"
    return export_checkpoint(checkpoint, "onnx", out=out, batch_size=2).path


def assert_consistent(row: dict, batch_size: int) -> None:
    """Positive latencies, p90 >= median, and images/s = batch / median latency (up to the rounding)."""
    assert row["batch_size"] == batch_size
    for timing in filter(None, (row["detect"], row["forward"])):
        assert 0 < timing["median_ms"] <= timing["p90_ms"]
        expected = batch_size * 1000.0 / timing["median_ms"]
        assert timing["images_per_second"] == pytest.approx(expected, rel=1e-3, abs=0.01)


def test_time_calls_times_each_call_after_the_warm_up(monkeypatch):
    clock = [0.0]
    durations = iter([5.0, 7.0, 1.0, 2.0, 4.0])  # the first two are the warm-up
    synced = []
    monkeypatch.setattr(bench.time, "perf_counter", lambda: clock[0])

    def call():
        clock[0] += next(durations)

    seconds = time_calls(call, repeats=3, warmup=2, synchronize=lambda: synced.append(clock[0]))
    assert seconds == [1.0, 2.0, 4.0]
    assert synced == [12.0, 13.0, 15.0, 19.0]  # after the warm-up and before each timed clock read


def test_timing_is_median_p90_and_images_per_second():
    timing = Timing.of([0.4, 0.1, 0.3, 0.2], batch_size=4)
    # median (0.2 + 0.3) / 2; p90 between the 3rd and 4th sorted value: 0.3 + 0.7 * 0.1; 4 images / 0.25 s
    assert (timing.median_ms, timing.p90_ms, timing.images_per_second) == (250.0, 370.0, 16.0)


def test_peak_memory_sees_an_allocation_and_resets_between_blocks():
    with bench._PeakMemory(torch.device("cpu")) as grown:
        block = np.ones(96 * 2**20 // 8)  # 96 MiB, every page written
        del block
    with bench._PeakMemory(torch.device("cpu")) as idle:
        pass
    assert grown.mib is not None and grown.mib >= 90
    if grown.method == "vmhwm":  # Linux: the peak is reset per block
        assert idle.mib < 16


def test_torch_runtime_has_one_row_per_batch_size(checkpoint):
    report = benchmark_detector(checkpoint, batch_sizes=[2, 1, 2], **FAST)
    data = json.loads(json.dumps(report.to_dict()))
    assert [row["batch_size"] for row in data["rows"]] == [1, 2]
    for row, batch_size in zip(data["rows"], (1, 2), strict=True):
        assert_consistent(row, batch_size)
        assert row["forward"] is not None and row["peak_memory_mib"] >= 0
    assert data["load_seconds"] > 0 and data["runtime"] == "torch" and data["device"] == "cpu"
    assert (data["network"], data["num_classes"], data["data_shape"]) == ("tiny", 2, [96, 96])
    assert data["versions"]["torch"] == torch.__version__ and data["skipped"] == []
    assert data["threads"] == torch.get_num_threads() and data["repeats"] == 2
    table = report.format().splitlines()
    assert table[0].startswith("tiny (2 classes), input 96x96, runtime torch (PyTorch eager), device cpu")
    rows = [line.split() for line in table[4:6]]
    assert [int(r[0]) for r in rows] == [1, 2]
    assert float(rows[1][3]) == pytest.approx(data["rows"][1]["detect"]["images_per_second"], abs=0.051)


def test_another_data_shape_and_threads_are_used_and_restored(checkpoint):
    torch.set_num_threads(2)
    try:
        report = benchmark_detector(checkpoint, batch_sizes=[1], data_shape=64, threads=1, **FAST)
        assert torch.get_num_threads() == 2  # restored
    finally:
        torch.set_num_threads(1)
    assert report.data_shape == (64, 64) and report.threads == 1


def test_fixed_batch_onnx_file_skips_other_batch_sizes(fixed_batch_onnx):
    report = benchmark_detector(fixed_batch_onnx, batch_sizes=[1, 2], **FAST)
    assert [row.batch_size for row in report.rows] == [2] and list(report.skipped) == [1]
    assert "exactly 2" in report.skipped[1] and report.rows[0].forward is None
    assert report.runtime == "onnx" and report.device == "cpu" and report.threads is None
    assert_consistent(report.to_dict()["rows"][0], 2)
    with pytest.raises(ConfigError, match="exactly 2 only.*--batch-sizes 2"):
        benchmark_detector(fixed_batch_onnx, batch_sizes=[1, 4], **FAST)
    with pytest.raises(ConfigError, match="runs only with --runtime onnx"):
        benchmark_detector(fixed_batch_onnx, "torch", **FAST)
    with pytest.raises(ConfigError, match="exported for 96x96 inputs"):
        benchmark_detector(fixed_batch_onnx, batch_sizes=[2], data_shape=64, **FAST)


def test_missing_onnxruntime_names_the_extra(fixed_batch_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    with pytest.raises(ConfigError, match=r'needs onnxruntime.*pip install "multibox\[export\]"'):
        benchmark_detector(fixed_batch_onnx, batch_sizes=[2], **FAST)


def test_bad_settings_are_config_errors(checkpoint, tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        benchmark_detector(tmp_path / "missing.pt")
    cases = [
        ({"runtime": "tflite"}, "runtime must be one of torch, onnx, torchscript"),
        ({"batch_sizes": [1, 0]}, "batch sizes must be integers >= 1"),
        ({"batch_sizes": []}, "batch sizes must be integers >= 1"),
        ({"repeats": 0}, "repeats must be >= 1"),
        ({"warmup": -1}, "warmup must be >= 0"),
        ({"threads": 0}, "threads must be >= 1"),
        ({"data_shape": 0}, "data_shape must be >= 1"),
    ]
    for settings, message in cases:
        with pytest.raises(ConfigError, match=message):
            benchmark_detector(checkpoint, **settings)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ConfigError, match="not available here"):
        benchmark_detector(checkpoint, device="cuda")


def test_cli_torch_runtime_prints_the_table_and_writes_json(checkpoint, tmp_path, capsys):
    out = tmp_path / "results" / "bench.json"
    args = ["benchmark", str(checkpoint), "--repeats", "2", "--warmup", "1", "--batch-sizes"]
    assert main([*args, "1,2", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "runtime torch (PyTorch eager)" in printed and f"wrote {out}" in printed
    data = json.loads(out.read_text())
    for row, batch_size in zip(data["rows"], (1, 2), strict=True):
        assert_consistent(row, batch_size)
    assert main([*args, "1", "--out", str(out)]) == 0  # a second run says it replaced the file
    assert f"replaced {out}" in capsys.readouterr().out
    assert [row["batch_size"] for row in json.loads(out.read_text())["rows"]] == [1]
    assert main([*args, "1"]) == 0
    assert "--out FILE.json writes these numbers" in capsys.readouterr().out


def test_cli_onnx_runtime_runs_the_file_and_names_the_skipped_batch_size(fixed_batch_onnx, tmp_path, capsys):
    out = tmp_path / "onnx.json"
    args = ["benchmark", str(fixed_batch_onnx), "--batch-sizes", "1,2", "--repeats", "2", "--threads", "1"]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        "runtime onnx (ONNX Runtime)" in printed
        and "batch 1 skipped: the file takes batches of exactly 2" in printed
    )
    data = json.loads(out.read_text())
    assert data["runtime"] == "onnx" and data["threads"] == 1 and data["source"] == str(fixed_batch_onnx)
    assert [row["batch_size"] for row in data["rows"]] == [2] and data["rows"][0]["forward"] is None
    assert data["skipped"][0]["batch_size"] == 1
    assert_consistent(data["rows"][0], 2)


def test_cli_checkpoint_with_an_export_runtime_is_exported_first(checkpoint, tmp_path, capsys):
    out = tmp_path / "ts.json"
    args = [
        "benchmark",
        str(checkpoint),
        "--runtime",
        "torchscript",
        "--batch-sizes",
        "1,2",
        "--repeats",
        "2",
    ]
    assert main([*args, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "runtime torchscript (TorchScript)" in printed
    assert f"exported {checkpoint} to a temporary torchscript file (any batch size)" in printed
    data = json.loads(out.read_text())
    assert data["source"] == str(checkpoint) and "check against PyTorch: agree" in data["notes"][0]
    assert [row["forward"] for row in data["rows"]] == [None, None]
    for row, batch_size in zip(data["rows"], (1, 2), strict=True):
        assert_consistent(row, batch_size)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--batch-sizes", "1,x"], "'x' is not an integer in '1,x'"),
        (["--batch-sizes", "1,-2"], "-2 is not >= 1 in '1,-2'"),
        (["--repeats", "0"], "--repeats: 0 is not >= 1"),
        (["--runtime", "tflite"], "invalid choice: 'tflite'"),
    ],
)
def test_cli_usage_errors_are_one_line(checkpoint, capsys, args, message):
    with pytest.raises(SystemExit) as exit_:
        main(["benchmark", str(checkpoint), *args])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and message in err and err.count("\n") == 1


def test_cli_errors_are_one_line(checkpoint, fixed_batch_onnx, tmp_path, capsys):
    cases = [
        ([str(tmp_path / "missing.pt")], 1, "does not exist"),
        ([str(fixed_batch_onnx), "--runtime", "torch"], 2, "runs only with --runtime onnx"),
        ([str(checkpoint), "--warmup", "-1"], 2, "warmup must be >= 0"),
        ([str(checkpoint), "--device", "gpu"], 2, "--device 'gpu' is not a device"),
        ([str(checkpoint), "--out", str(tmp_path)], 2, "is a folder"),
    ]
    for args, code, message in cases:
        assert main(["benchmark", *args]) == code
        err = capsys.readouterr().err
        assert err.startswith("multibox: error: ") and message in err and err.count("\n") == 1
