"""``multibox benchmark``: how fast a checkpoint or an exported file runs, per batch size, on random images.

The original example's ``benchmark_score.py`` times the forward of its inference symbol (the network, softmax
and ``MultiBoxDetection``) on random data for batch sizes 1 to 32. Here that is ``detect``: the whole detector
as a user calls it, uint8 images ``(N, 3, H, W)`` at the network size in, decoded detections after NMS out.
The PyTorch runtime also times ``forward``, the network alone (an exported file holds both in one graph).
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from multibox.deploy.formats import EXPORT_FORMATS, format_of_file, open_detector
from multibox.errors import ConfigError
from multibox.version import __version__

RUNTIMES = ("torch", *EXPORT_FORMATS)
"""``torch``: a checkpoint in eager PyTorch; the others: the export formats of :mod:`multibox.deploy.formats`."""
DEFAULT_BATCH_SIZES = (1, 2, 4, 8, 16, 32)  # the original's sweep (its --batch_size 0)


def time_calls(
    call: Callable[[], object], repeats: int, warmup: int = 1, synchronize: Callable[[], None] | None = None
) -> list[float]:
    """Seconds of each of ``repeats`` calls of ``call``, after ``warmup`` untimed ones; ``synchronize`` (e.g.
    ``torch.cuda.synchronize``) runs before each clock read so that queued GPU work is counted."""
    sync = synchronize or (lambda: None)
    for _ in range(warmup):
        call()
    sync()
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        sync()
        seconds.append(time.perf_counter() - start)
    return seconds


@dataclass
class Timing:
    """Latency of one batch: median and 90th percentile in ms, and images per second at the median."""

    median_ms: float
    p90_ms: float
    images_per_second: float

    @classmethod
    def of(cls, seconds: list[float], batch_size: int) -> Timing:
        median = statistics.median(seconds)
        return cls(
            round(median * 1000, 3),
            round(float(np.percentile(seconds, 90)) * 1000, 3),
            round(batch_size / median, 2),
        )


@dataclass
class BatchResult:
    """One batch size: ``detect`` (the whole detector), ``forward`` (the network alone; PyTorch runtime
    only) and the peak memory growth while both ran (MiB; ``None`` where it cannot be measured)."""

    batch_size: int
    detect: Timing
    forward: Timing | None
    peak_memory_mib: float | None


@dataclass
class BenchmarkReport:
    """What :func:`benchmark_detector` measured, and on what."""

    source: str
    runtime: str
    network: str
    num_classes: int
    data_shape: tuple[int, int]
    device: str
    threads: int | None  # None: ONNX Runtime's own choice
    versions: dict[str, str]
    cpu: str
    repeats: int
    warmup: int
    seed: int
    load_seconds: float
    memory: str  # what peak_memory_mib measures
    rows: list[BatchResult] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)  # batch size -> why it was not run
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """The report as plain JSON data."""
        data = asdict(self)
        data["skipped"] = [{"batch_size": b, "reason": why} for b, why in self.skipped.items()]
        return {"multibox_version": __version__, **data}

    def format(self) -> str:
        """The header lines, the table (one row per batch size) and the notes, as printed by the command."""
        runtime = "PyTorch eager" if self.runtime == "torch" else EXPORT_FORMATS[self.runtime].runtime
        threads = {None: "ONNX Runtime's default threads", 1: "1 thread"}.get(
            self.threads, f"{self.threads} threads"
        )
        versions = ", ".join(f"{name} {version}" for name, version in self.versions.items())
        lines = [
            f"{self.network} ({self.num_classes} classes), input {self.data_shape[0]}x{self.data_shape[1]}, "
            f"runtime {self.runtime} ({runtime}), device {self.device}, {threads}",
            f"{versions}; CPU {self.cpu}",
            f"opened in {self.load_seconds:.3f} s; median [p90] of {self.repeats} runs after {self.warmup} "
            f"warm-up per batch size, random uint8 images (seed {self.seed})",
            f"{'batch':>5}  {'detect ms median [p90]':>24}  {'images/s':>9}  {'forward ms median [p90]':>24}"
            f"  {'peak MiB':>8}",
        ]
        for row in self.rows:
            forward = "-" if row.forward is None else _ms(row.forward)
            memory = "n/a" if row.peak_memory_mib is None else f"{row.peak_memory_mib:.1f}"
            lines.append(
                f"{row.batch_size:>5}  {_ms(row.detect):>24}  {row.detect.images_per_second:>9.1f}  "
                f"{forward:>24}  {memory:>8}"
            )
        lines += [f"batch {b} skipped: {why}" for b, why in self.skipped.items()]
        lines += [f"detect: uint8 images in, detections after NMS out; peak MiB: {self.memory}", *self.notes]
        return "\n".join(lines)


def _ms(timing: Timing) -> str:
    return f"{timing.median_ms:.2f} [{timing.p90_ms:.2f}]"


def benchmark_detector(
    path: str | Path,
    runtime: str | None = None,
    *,
    batch_sizes: tuple[int, ...] | list[int] = DEFAULT_BATCH_SIZES,
    data_shape: int | None = None,
    device: str | torch.device = "cpu",
    repeats: int = 10,
    warmup: int = 2,
    threads: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> BenchmarkReport:
    """Open ``path`` (a checkpoint or an exported file, :func:`~multibox.deploy.formats.open_detector`) and time
    it on random uint8 images ``(B, 3, S, S)`` (``S = data_shape``, default: the detector's) per batch size.

    ``runtime`` (:data:`RUNTIMES`; default: the file's own, ``torch`` for a checkpoint): a checkpoint with an
    export runtime is exported to a temporary file first (any batch size); an exported file runs only in its
    own. ``threads`` sets torch's thread count for the run (restored afterwards) and ONNX Runtime's. Batch
    sizes a fixed-batch file cannot take are skipped, with the reason in :attr:`BenchmarkReport.skipped`.
    """
    path = Path(path)
    batch_sizes = _checked_settings(batch_sizes, repeats, warmup, threads, data_shape)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    runtime = _resolved_runtime(path, runtime)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device} is not available here (no CUDA device): use --device cpu")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory(prefix="multibox-benchmark-") as folder:
            opened = _open(path, runtime, data_shape, device, threads, Path(folder))
            report = BenchmarkReport(
                source=str(path),
                runtime=runtime,
                network=opened.network,
                num_classes=len(opened.detector.class_names),
                data_shape=opened.data_shape,
                device=_device_name(opened.device),
                threads=threads or (None if opened.own_threads else torch.get_num_threads()),
                versions=_versions(),
                cpu=cpu_model(),
                repeats=repeats,
                warmup=warmup,
                seed=seed,
                load_seconds=round(opened.load_seconds, 4),
                memory=_MEMORY_METHODS[_memory_method(opened.device)],
                notes=opened.notes,
            )
            _sweep(report, opened, batch_sizes, progress)
    finally:
        torch.set_num_threads(previous_threads)
    return report


def _checked_settings(batch_sizes, repeats, warmup, threads, data_shape) -> list[int]:
    """The batch sizes, sorted without repeats; a :class:`ConfigError` for a value out of range."""
    sizes = list(batch_sizes)
    if not sizes or any(isinstance(b, bool) or not isinstance(b, int) or b < 1 for b in sizes):
        raise ConfigError(f"batch sizes must be integers >= 1, got {sizes}")
    for name, value, lowest in (
        ("repeats", repeats, 1),
        ("warmup", warmup, 0),
        ("threads", threads, 1),
        ("data_shape", data_shape, 1),
    ):
        if value is not None and value < lowest:
            raise ConfigError(f"{name} must be >= {lowest}, got {value}")
    return sorted(set(sizes))


def _resolved_runtime(path: Path, runtime: str | None) -> str:
    if runtime is not None and runtime not in RUNTIMES:
        raise ConfigError(f"runtime must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    fixed = format_of_file(path)
    if fixed is None:
        return runtime or "torch"
    if runtime not in (None, fixed.name):
        raise ConfigError(
            f"{path} is a {fixed.runtime} file and runs only with --runtime {fixed.name}: benchmark the "
            f"checkpoint it was exported from for --runtime {runtime}"
        )
    return fixed.name


@dataclass
class _Opened:
    """The detector under test and what the report says about it."""

    detector: object  # a TorchDetector or an ExportedDetector
    load_seconds: float
    network: str
    data_shape: tuple[int, int]
    device: torch.device  # where it runs (ONNX Runtime: the CPU, whatever was asked)
    own_threads: bool  # the runtime has its own thread pool (ONNX Runtime)
    fixed_batch: int | None  # the only batch size the file takes, or None
    notes: list[str]


def _open(path: Path, runtime: str, data_shape: int | None, device, threads, folder: Path) -> _Opened:
    """Export a checkpoint for an export runtime into ``folder``, then open the file and time that."""
    from multibox.inference.torch_detector import TorchDetector

    notes = []
    try:
        if runtime != "torch" and format_of_file(path) is None:
            path, note = _export_for_benchmark(path, runtime, data_shape, folder)
            notes.append(note)
        start = time.perf_counter()
        detector = open_detector(path, device, threads=threads)
        load_seconds = time.perf_counter() - start
    except ImportError as error:
        if runtime == "torch":
            raise
        missing = error.name or getattr(error.__cause__, "name", None) or "a package"
        raise ConfigError(
            f'--runtime {runtime} needs {missing}, which is not installed: pip install "multibox[export]"'
        ) from error
    if isinstance(detector, TorchDetector):
        from multibox.checkpoint import read_checkpoint

        network = str(read_checkpoint(path)["network"].get("name"))
        shape = (data_shape, data_shape) if data_shape else tuple(detector.model.data_shape)
        fixed_batch = None
    else:
        network, shape = str(detector.metadata.get("network")), tuple(detector.data_shape)
        fixed_batch = detector.batch_size
    if data_shape is not None and shape != (data_shape, data_shape):
        raise ConfigError(
            f"{path} was exported for {shape[0]}x{shape[1]} inputs: benchmark it without --data-shape, or "
            f"export again with --data-shape {data_shape}"
        )
    run_on = torch.device(getattr(detector, "device", "cpu"))  # ONNX Runtime: its CPU provider
    if run_on != device:
        notes.append(f"{runtime} runs on {run_on} here, whatever the device asked for ({device})")
    own_threads = getattr(detector, "session", None) is not None
    return _Opened(detector, load_seconds, network, shape, run_on, own_threads, fixed_batch, notes)


def _export_for_benchmark(checkpoint: Path, runtime: str, data_shape: int | None, folder: Path):
    """``(exported file, note)``: ``checkpoint`` written in the ``runtime`` format (any batch size) to ``folder``."""
    from multibox.deploy.export import export_checkpoint

    out = folder / (checkpoint.stem + EXPORT_FORMATS[runtime].suffixes[0])
    start = time.perf_counter()
    result = export_checkpoint(checkpoint, runtime, out=out, data_shape=data_shape, dynamic_batch=True)
    note = (
        f"exported {checkpoint} to a temporary {runtime} file (any batch size) for this run in "
        f"{time.perf_counter() - start:.1f} s; its check against PyTorch: {result.check}"
    )
    return result.path, note


def _sweep(report: BenchmarkReport, opened: _Opened, batch_sizes: list[int], progress: bool) -> None:
    """Time every batch size the detector takes into ``report.rows``; the others into ``report.skipped``."""
    from tqdm import tqdm

    fixed = opened.fixed_batch
    runnable = [b for b in batch_sizes if fixed is None or b == fixed]
    for b in batch_sizes:
        if b not in runnable:
            report.skipped[b] = (
                f"the file takes batches of exactly {fixed} (export with --dynamic-batch for any)"
            )
    if not runnable:
        raise ConfigError(
            f"{report.source} takes batches of exactly {fixed} only, and the batch sizes asked for "
            f"({', '.join(map(str, batch_sizes))}) do not include it: give --batch-sizes {fixed}, or export "
            "with --dynamic-batch"
        )
    generator = torch.Generator().manual_seed(report.seed)
    images = torch.randint(
        0, 256, (max(runnable), 3, *report.data_shape), generator=generator, dtype=torch.uint8
    )
    device = opened.device
    synchronize = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None
    bar = tqdm(runnable, desc="benchmark", unit="batch size", disable=not (progress and sys.stderr.isatty()))
    for b in bar:
        bar.set_postfix(batch=b)
        calls = _calls(opened.detector, images[:b])
        with torch.inference_mode(), _PeakMemory(device) as memory:
            timings = {
                name: Timing.of(time_calls(call, report.repeats, report.warmup, synchronize), b)
                for name, call in calls.items()
            }
        report.rows.append(BatchResult(b, timings["detect"], timings.get("forward"), memory.mib))


def _calls(detector, images: torch.Tensor) -> dict[str, Callable[[], object]]:
    """``{"detect": ..., "forward": ...}``: what is timed on ``images (B, 3, H, W)`` uint8; an exported file
    holds the network and the decoding in one graph, so it has ``detect`` only."""
    from multibox.inference.torch_detector import TorchDetector

    if isinstance(detector, TorchDetector):
        model, batch = detector.model, images.to(detector.device)
        return {"detect": lambda: model.detect(batch), "forward": lambda: model(batch)}
    array = images.numpy()
    return {"detect": lambda: detector.detect(array)}


_MEMORY_METHODS = {
    "cuda": "growth of torch.cuda.max_memory_allocated over the memory allocated before each batch size",
    "vmhwm": "peak resident memory of the process (VmHWM, reset per batch size) minus its resident memory "
    "before",
    "ru_maxrss": "growth of the process's peak resident memory (ru_maxrss; 0 when an earlier batch size "
    "peaked higher)",
    "none": "not measured on this system",
}


def _memory_method(device: torch.device) -> str:
    if device.type == "cuda":
        return "cuda"
    if _reset_rss_peak():
        return "vmhwm"
    return "ru_maxrss" if _max_rss_bytes() is not None else "none"


class _PeakMemory:
    """Peak memory growth over a ``with`` block, in MiB (``mib``; ``None`` where it cannot be measured)."""

    def __init__(self, device: torch.device) -> None:
        self.device, self.method, self.mib = device, _memory_method(device), None

    def _current(self, peak: bool) -> int | None:
        if self.method == "cuda":
            return (
                torch.cuda.max_memory_allocated(self.device)
                if peak
                else torch.cuda.memory_allocated(self.device)
            )
        if self.method == "vmhwm":
            return _proc_status_bytes("VmHWM" if peak else "VmRSS")
        return _max_rss_bytes()

    def __enter__(self) -> _PeakMemory:
        gc.collect()
        _release_freed_memory()
        if self.method == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.method == "vmhwm":
            _reset_rss_peak()
        self._before = self._current(peak=False)
        return self

    def __exit__(self, *exc) -> None:
        after = self._current(peak=True)
        if after is not None and self._before is not None:
            self.mib = round(max(after - self._before, 0) / 2**20, 1)


def _proc_status_bytes(name: str) -> int | None:
    """A ``kB`` line of ``/proc/self/status`` (``VmRSS``, ``VmHWM``) in bytes; ``None`` off Linux."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return None
    return next((int(line.split()[1]) * 1024 for line in lines if line.startswith(f"{name}:")), None)


def _release_freed_memory() -> None:
    """Hand memory that was freed but kept by the C allocator back to the system (glibc's ``malloc_trim``),
    so that the resident memory before a batch size is what is in use, not what an earlier one left."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).malloc_trim(0)
        except (OSError, AttributeError):  # not glibc
            pass


def _reset_rss_peak() -> bool:
    """Reset the process's peak resident memory (Linux: ``5 > /proc/self/clear_refs``); whether it worked."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _proc_status_bytes("VmHWM") is not None


def _max_rss_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB elsewhere


def _device_name(device: torch.device) -> str:
    return f"{device} ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else str(device)


def _versions() -> dict[str, str]:
    """torch's version, and ONNX Runtime's where it is installed."""
    versions = {"torch": torch.__version__}
    try:
        versions["onnxruntime"] = metadata.version("onnxruntime")
    except metadata.PackageNotFoundError:
        pass
    return versions


def cpu_model() -> str:
    """The processor's name (Linux: ``/proc/cpuinfo``, else :func:`platform.processor`) and its core count."""
    name = ""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    except OSError:
        pass
    return f"{name or platform.processor() or platform.machine()}, {os.cpu_count()} cores"
