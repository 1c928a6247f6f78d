"""Speed of ``multibox.ops`` against torchvision's SSD and the original MXNet 1.9.1 operators (SSD300 case).

One process times ours and torchvision on the same inputs: 8732 anchors of the vgg16_reduced 300 preset,
batch 32, 21 classes, 1 to 7 boxes per image, in two score distributions ("random" logits and
"trained"-like, background-dominated ones). The MXNet operators run on the same inputs (saved to
``benchmarks/out/``) in a subprocess inside ``benchmarks/.venv-mxnet``, created by ``--setup-mxnet``; each
of their calls is requested in turn with the torch-side calls, so all are timed in the same moments.

    .venv/bin/python benchmarks/ops.py [--setup-mxnet] [--batch 32] [--device cpu] [--markdown FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torchvision  # noqa: E402
from _ops_cases import (  # noqa: E402
    CASE_DESCRIPTIONS,
    IMAGE_SIZE,
    NUM_CLASSES,
    Case,
    make_case,
    save_case,
    ssd300_anchors,
)
from _ops_timing import SelfTimed, measure  # noqa: E402
from _ops_torchvision import TorchvisionSSD  # noqa: E402

from multibox.ops.boxes import VARIANCES  # noqa: E402

OUT_DIR = HERE / "out"
MXNET_VENV = HERE / ".venv-mxnet"
# The example's training parameters (spec section 4.2).
TARGET_PARAMS = {
    "overlap_threshold": 0.5,
    "ignore_label": -1,
    "negative_mining_ratio": 3.0,
    "negative_mining_thresh": 0.5,
    "minimum_negative_samples": 0,
    "variances": VARIANCES,
}
# MXNet semantics: one detection per anchor, NMS among the top 400.
MXNET_DETECTION_PARAMS = {
    "clip": True,
    "threshold": 0.01,
    "background_id": 0,
    "nms_threshold": 0.45,
    "force_suppress": False,
    "variances": VARIANCES,
    "nms_topk": 400,
}
# torchvision's SSD300 post-processing: per class, 400 candidates, 200 detections per image.
PER_CLASS_PARAMS = {**MXNET_DETECTION_PARAMS, "per_class": True, "max_detections": 200}

TV_LOSS, TV_POST = "torchvision match + compute_loss", "torchvision postprocess_detections"
MX_TARGET, MX_DETECTION = "MXNet MultiBoxTarget", "MXNet MultiBoxDetection"


TV_LOSS_BWD = f"{TV_LOSS}, fwd+bwd"
# (step, our timing label, reference, reference timing label, speed-up goal)
COMPARISONS = (
    ("target + loss (forward)", "ours target + loss", TV_LOSS, TV_LOSS, 2.0),
    ("target + loss (fwd + bwd)", "ours target + loss, fwd+bwd", TV_LOSS, TV_LOSS_BWD, 2.0),
    ("softmax + per-class detection", "ours softmax + per-class detection", TV_POST, TV_POST, 4.0),
    ("target", "ours target", MX_TARGET, MX_TARGET, 2.0),
    ("MXNet-semantics detection", "ours MXNet-semantics detection", MX_DETECTION, MX_DETECTION, 2.0),
)
# --steps names of the comparisons
STEP_KEYS = dict(
    zip(("loss", "loss-bwd", "per-class", "target", "mxnet-detection"), COMPARISONS, strict=True)
)


@dataclass
class Row:
    """One comparison: our step against a reference implementation of it."""

    case: str
    step: str
    ours: dict | None
    reference: str
    ref: dict | None
    goal: float | None = None

    def speedup_by(self, stat: str = "median_ms") -> float | None:
        if self.ours is None or self.ref is None:
            return None
        return self.ref[stat] / self.ours[stat]

    @property
    def speedup(self) -> float | None:
        return self.speedup_by("median_ms")

    @property
    def paired_speedup(self) -> float | None:
        """Median over rounds of reference / ours timed in the same round: a slow spell of the machine
        lengthens both calls of a round, so it cancels here."""
        if self.ours is None or self.ref is None:
            return None
        pairs = zip(self.ref["times_ms"], self.ours["times_ms"], strict=True)
        return float(np.median([ref / ours for ref, ours in pairs]))


def load_ours() -> tuple[SimpleNamespace | None, str]:
    """Our operators, or None and the reason when they cannot be imported yet."""
    try:
        from multibox.ops import multibox_detection, multibox_loss, multibox_target
    except ImportError as exc:
        return None, f"{type(exc).__name__}: {exc}"
    return SimpleNamespace(target=multibox_target, detection=multibox_detection, loss=multibox_loss), ""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Bench:
    """Measurements of one case: ours and torchvision on one device, MXNet's operators (when ``mxnet`` is
    given: a function ``op -> ms`` timing one call in the MXNet process) interleaved with them."""

    def __init__(self, case: Case, device: torch.device, tv: TorchvisionSSD, ours, args, mxnet=None) -> None:
        self.case, self.device, self.tv, self.ours, self.args = case, device, tv, ours, args
        self.mxnet = mxnet
        t = lambda a: torch.from_numpy(a).to(device)  # noqa: E731
        self.anchors = t(case.anchors)
        self.labels = t(case.labels)
        self.logits = t(case.cls_logits)  # (N, C+1, A): MXNet layout
        self.prob = t(case.cls_prob)
        self.loc = t(case.loc_pred)  # (N, 4A)
        n, a = case.batch, case.anchors.shape[0]
        # torchvision's layouts and pixel coordinates, prepared once (a head can emit either layout).
        self.tv_logits = self.logits.permute(0, 2, 1).contiguous()  # (N, A, C+1)
        self.tv_loc = self.loc.view(n, a, 4)
        self.tv_anchors = [self.anchors * IMAGE_SIZE for _ in range(n)]
        self.tv_targets = []
        for labels in self.labels:
            valid = labels[:, 0] >= 0
            self.tv_targets.append(
                {"boxes": labels[valid, 1:5] * IMAGE_SIZE, "labels": labels[valid, 0].long() + 1}
            )
        self.image_shapes = [(IMAGE_SIZE, IMAGE_SIZE)] * n

    def time(self, fns: dict[str, tuple[Callable[[], object], bool]]) -> dict[str, dict]:
        """Interleaved timings of ``{label: (fn, needs_grad)}``, as summary dicts."""
        sync = torch.cuda.synchronize if self.device.type == "cuda" else None

        def with_grad_mode(fn, grad):
            def call():
                with torch.set_grad_enabled(grad):
                    return fn()

            return call

        def report(label, timing):
            log(f"  {self.case.name:8s} {label:40s} {timing.median:10.2f} ms (n={len(timing.times_ms)})")

        timings = measure(
            {
                label: fn if isinstance(fn, SelfTimed) else with_grad_mode(fn, grad)
                for label, (fn, grad) in fns.items()
            },
            sync=sync,
            warmup=self.args.warmup,
            repeat=self.args.repeat,
            max_seconds=self.args.max_seconds,
            on_done=report,
        )
        return {label: t.as_dict() for label, t in timings.items()}

    # torchvision ---------------------------------------------------------------------------------
    def tv_loss(self, loc: torch.Tensor, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        heads = {"bbox_regression": loc, "cls_logits": logits}
        return self.tv.match_and_loss(self.tv_targets, heads, self.tv_anchors)

    def tv_loss_backward(self, loc: torch.Tensor, logits: torch.Tensor) -> None:
        loc.grad = logits.grad = None
        losses = self.tv_loss(loc, logits)
        (losses["bbox_regression"] + losses["classification"]).backward()

    def tv_postprocess(self) -> list[dict[str, torch.Tensor]]:
        heads = {"bbox_regression": self.tv_loc, "cls_logits": self.tv_logits}
        return self.tv.postprocess(heads, self.tv_anchors, self.image_shapes)

    # ours ------------------------------------------------------------------------------------------
    def target(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.no_grad():
            return self.ours.target(self.anchors, self.labels, logits.detach(), **TARGET_PARAMS)

    def target_loss(self, loc: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        loc_target, loc_mask, cls_target = self.target(logits)
        return self.ours.loss(logits, loc, cls_target, loc_target, loc_mask, normalization="valid")

    def target_loss_backward(self, loc: torch.Tensor, logits: torch.Tensor) -> None:
        loc.grad = logits.grad = None
        cls_loss, loc_loss = self.target_loss(loc, logits)
        (cls_loss.sum() + loc_loss.sum()).backward()

    def per_class_detection(self) -> torch.Tensor:
        prob = torch.softmax(self.logits, dim=1)
        return self.ours.detection(prob, self.loc, self.anchors, **PER_CLASS_PARAMS)

    def mxnet_detection(self) -> torch.Tensor:
        return self.ours.detection(self.prob, self.loc, self.anchors, **MXNET_DETECTION_PARAMS)

    # all -------------------------------------------------------------------------------------------
    def run(self) -> tuple[list[Row], dict]:
        """Time every step; returns the rows and our outputs for the cross-checks."""
        name, ours = self.case.name, self.ours is not None
        leaf = lambda x: x.detach().clone().requires_grad_(True)  # noqa: E731
        tv_loc, tv_logits = leaf(self.tv_loc), leaf(self.tv_logits)
        loc, logits = leaf(self.loc), leaf(self.logits)

        fns = {
            TV_LOSS: (lambda: self.tv_loss(self.tv_loc, self.tv_logits), False),
            TV_LOSS_BWD: (lambda: self.tv_loss_backward(tv_loc, tv_logits), True),
            TV_POST: (self.tv_postprocess, False),
        }
        if ours:
            fns |= {
                "ours target + loss": (lambda: self.target_loss(self.loc, self.logits), False),
                "ours target + loss, fwd+bwd": (lambda: self.target_loss_backward(loc, logits), True),
                "ours softmax + per-class detection": (self.per_class_detection, False),
                "ours target": (lambda: self.target(self.logits), False),
                "ours MXNet-semantics detection": (self.mxnet_detection, False),
            }
        if self.mxnet is not None:
            fns |= {
                MX_TARGET: (SelfTimed(lambda: self.mxnet("target")), False),
                MX_DETECTION: (SelfTimed(lambda: self.mxnet("detection")), False),
            }
        comparisons = [STEP_KEYS[key] for key in self.args.steps]
        wanted = {
            label for _, ours_label, _, ref_label, _ in comparisons for label in (ours_label, ref_label)
        }
        t = self.time({label: fn for label, fn in fns.items() if label in wanted})
        rows = [
            Row(name, step, t.get(ours_label), ref, t.get(ref_label), goal)
            for step, ours_label, ref, ref_label, goal in comparisons
        ]
        outputs = {}
        if ours:
            with torch.no_grad():
                matched = self.tv.match(self.tv_targets, self.tv_anchors)
                outputs = {
                    "target": [x.cpu().numpy() for x in self.target(self.logits)],
                    "mxnet_detection": self.mxnet_detection().cpu().numpy(),
                    "per_class": self.per_class_detection().cpu().numpy(),
                    "tv_post": [{k: v.cpu().numpy() for k, v in d.items()} for d in self.tv_postprocess()],
                    "tv_positives": float(np.mean([(m >= 0).sum().item() for m in matched])),
                }
        return rows, outputs


# MXNet ---------------------------------------------------------------------------------------------
def mxnet_python() -> Path:
    return MXNET_VENV / "bin" / "python"


def setup_mxnet() -> None:
    subprocess.run(["bash", str(HERE / "setup_mxnet.sh")], check=True)


class MXNetServer:
    """MXNet's operators on the saved cases, timed one call at a time in the MXNet virtualenv
    (``mxnet_ops.py``), so that they interleave with the torch-side calls."""

    def __init__(self, paths: list[Path]) -> None:
        log("starting MXNet 1.9.1 in a subprocess ...")
        cmd = [str(mxnet_python()), str(HERE / "mxnet_ops.py"), *map(str, paths)]
        self.paths = [str(p) for p in paths]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready:
            raise RuntimeError(f"MXNet subprocess failed (exit {self.proc.wait()}); see its messages above")
        self.versions = json.loads(ready)

    def timer(self, path: Path):
        """``op -> ms``: one timed call of ``op`` ("target" or "detection") on the case saved at ``path``."""
        index = self.paths.index(str(path))

        def time_one(op: str) -> float:
            self.proc.stdin.write(f"{index} {op}\n")
            self.proc.stdin.flush()
            return float(self.proc.stdout.readline())

        return time_one

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait()


# cross-checks --------------------------------------------------------------------------------------
def check_target(ours: list[np.ndarray], mx: np.lib.npyio.NpzFile) -> str:
    loc_target, loc_mask, cls_target = ours
    cls_diff = int((cls_target != mx["cls_target"]).sum())
    mask_diff = int((loc_mask != mx["loc_mask"]).sum())
    both = (loc_mask > 0) & (mx["loc_mask"] > 0)
    loc_err = float(np.abs(loc_target - mx["loc_target"])[both].max()) if both.any() else 0.0
    return (
        f"target vs MXNet: cls_target differs on {cls_diff}/{cls_target.size} anchors, loc_mask on "
        f"{mask_diff}/{loc_mask.size}, max |loc_target diff| {loc_err:.2e}"
    )


def check_detection(ours: np.ndarray, mx: np.ndarray) -> str:
    """Kept rows (id >= 0) of each image must agree in order; reports the worst value difference."""
    same, worst = 0, 0.0
    for o, m in zip(ours, mx, strict=True):
        ko, km = o[o[:, 0] >= 0], m[m[:, 0] >= 0]
        if ko.shape == km.shape and np.array_equal(ko[:, 0], km[:, 0]):
            err = float(np.abs(ko - km).max()) if ko.size else 0.0
            worst = max(worst, err)
            same += err <= 1e-5
    kept = np.mean([(m[:, 0] >= 0).sum() for m in mx])
    return (
        f"MXNet-semantics detection vs MXNet: kept rows identical (ids, order, values within 1e-5) in "
        f"{same}/{len(mx)} images; worst |diff| among same-shape images {worst:.2e}; "
        f"MXNet keeps {kept:.1f}/image"
    )


def check_per_class(ours: np.ndarray, tv: list[dict[str, np.ndarray]]) -> str:
    """Per-class detections against torchvision: counts, and the score-sorted scores position by position."""
    counts_ours = [(o[:, 0] >= 0).sum() for o in ours]
    counts_tv = [len(d["scores"]) for d in tv]
    worst = 0.0
    for o, d in zip(ours, tv, strict=True):
        scores = np.sort(o[o[:, 0] >= 0, 1])[::-1]
        k = min(len(scores), len(d["scores"]))
        if k:
            worst = max(worst, float(np.abs(scores[:k] - d["scores"][:k]).max()))
    equal = sum(a == b for a, b in zip(counts_ours, counts_tv, strict=True))
    return (
        f"per-class detection vs torchvision: detections/image {np.mean(counts_ours):.1f} vs "
        f"{np.mean(counts_tv):.1f}"
        f" (same count in {equal}/{len(tv)} images), worst |score diff| by rank {worst:.2e}"
    )


# machine load --------------------------------------------------------------------------------------
def _cpu_seconds() -> tuple[float, float, float] | None:
    """(wall clock, busy CPU seconds of the machine, CPU seconds of this process and children); Linux only."""
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:9]]
    except OSError:
        return None
    busy = (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
    t = os.times()
    return time.monotonic(), busy, t.user + t.system + t.children_user + t.children_system


def _foreign_load(start: tuple[float, float, float] | None) -> str:
    """How many CPUs other processes kept busy on average since ``start`` (their work skews the times)."""
    end = _cpu_seconds()
    if start is None or end is None:
        return "load of other processes unknown"
    wall, busy, own = (e - s for e, s in zip(end, start, strict=True))
    foreign = max(0.0, busy - own) / wall
    warning = " (figures unreliable: the machine was not quiet)" if foreign > 0.1 else ""
    return f"other processes kept {foreign:.2f} of {os.cpu_count()} CPUs busy during the run{warning}"


def wait_until_quiet(max_wait: float, busy_limit: float = 0.1, window: float = 5.0) -> None:
    """Wait up to ``max_wait`` s until other processes use under ``busy_limit`` CPUs over ``window`` s."""
    deadline = time.monotonic() + max_wait
    while True:
        start = _cpu_seconds()
        time.sleep(window)
        end = _cpu_seconds()
        if start is None or end is None:
            return
        busy = ((end[1] - start[1]) - (end[2] - start[2])) / (end[0] - start[0])
        if busy < busy_limit:
            return
        if time.monotonic() > deadline:
            log(f"machine still busy ({busy:.2f} CPUs used by others); timing anyway")
            return
        log(f"waiting for a quiet machine ({busy:.2f} CPUs used by others)")


# report --------------------------------------------------------------------------------------------
def fmt_time(t: dict | None) -> str:
    if t is None:
        return "n/a"
    return f"{t['median_ms']:.2f} [{t['q1_ms']:.2f}-{t['q3_ms']:.2f}]"


def verdict(row: Row, on_cpu: bool) -> str:
    if row.goal is None:
        return ""
    if row.speedup is None:
        return f">= {row.goal:g}x: not measured"
    if not on_cpu:
        return f">= {row.goal:g}x (goal is for CPU)"
    return f">= {row.goal:g}x: {'met' if row.speedup >= row.goal else 'MISSED'}"


def table(rows: list[Row], on_cpu: bool) -> list[list[str]]:
    header = [
        "case",
        "step",
        "ours ms [IQR]",
        "reference",
        "ref ms [IQR]",
        "speed-up",
        "(by min)",
        "(paired)",
        "goal",
    ]
    body = [
        [
            r.case,
            r.step,
            fmt_time(r.ours),
            r.reference,
            fmt_time(r.ref),
            "n/a" if r.speedup is None else f"{r.speedup:.2f}x",
            "n/a" if r.speedup is None else f"{r.speedup_by('min_ms'):.2f}x",
            "n/a" if r.paired_speedup is None else f"{r.paired_speedup:.2f}x",
            verdict(r, on_cpu),
        ]
        for r in rows
    ]
    return [header, *body]


def print_table(cells: list[list[str]]) -> None:
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]))]
    for i, row in enumerate(cells):
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))


def markdown(cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(cells[0]) + " |", "|" + "---|" * len(cells[0])]
    lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
    return "\n".join(lines) + "\n"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--device", default="cpu", help="torch device for ours and torchvision (MXNet: CPU)")
    parser.add_argument(
        "--cases", nargs="+", default=list(CASE_DESCRIPTIONS), choices=list(CASE_DESCRIPTIONS)
    )
    parser.add_argument(
        "--steps",
        nargs="+",
        default=list(STEP_KEYS),
        choices=list(STEP_KEYS),
        help="comparisons to time (default: all); the others' calls are left out of the rounds",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument("--repeat", type=int, default=15, help="timed rounds (fewer if --max-seconds is hit)")
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="time budget per case (rounds stop after it, min 5)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's default)")
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to this many s for other processes to go idle"
    )
    parser.add_argument("--no-mxnet", action="store_true", help="skip the MXNet subprocess")
    parser.add_argument(
        "--setup-mxnet", action="store_true", help=f"create {MXNET_VENV.name} first if missing"
    )
    parser.add_argument("--json", type=Path, help="also write all figures as JSON to this file")
    parser.add_argument("--markdown", type=Path, help="also write the table as markdown to this file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda requested but CUDA is not available")
    if args.setup_mxnet and not mxnet_python().exists():
        setup_mxnet()
    ours, why = load_ours()
    if ours is None:
        log(f"our operators are not available yet ({why}); timing the references only")

    use_mxnet = not args.no_mxnet and mxnet_python().exists()
    if not args.no_mxnet and not use_mxnet:
        log(f"MXNet skipped: {MXNET_VENV} is missing (create it with --setup-mxnet or setup_mxnet.sh)")
    if args.wait_quiet > 0:
        wait_until_quiet(args.wait_quiet)
    cpu_start = _cpu_seconds()
    anchors = ssd300_anchors()
    tv = TorchvisionSSD(NUM_CLASSES + 1, device)
    OUT_DIR.mkdir(exist_ok=True)
    rows, outputs, cases, paths = [], {}, {}, {}
    for name in args.cases:
        cases[name] = make_case(name, args.batch, anchors, seed=args.seed)
        paths[name] = OUT_DIR / f"ssd300_{name}_b{args.batch}.npz"
        if use_mxnet:
            save_case(cases[name], paths[name], TARGET_PARAMS, MXNET_DETECTION_PARAMS)
    mx = MXNetServer(list(paths.values())) if use_mxnet else None
    try:
        for name, case in cases.items():
            log(f"case {name}: {CASE_DESCRIPTIONS[name]}")
            timer = mx.timer(paths[name]) if mx else None
            case_rows, outputs[name] = Bench(case, device, tv, ours, args, timer).run()
            rows += case_rows
    finally:
        if mx:
            mx.close()

    threads = torch.get_num_threads()
    print(
        f"SSD300 MultiBox ops: {anchors.shape[0]} anchors, batch {args.batch}, {NUM_CLASSES + 1} classes, "
        f"device {device}; torch {torch.__version__} ({threads} threads), "
        f"torchvision {torchvision.__version__}, "
        f"MXNet {mx.versions['mxnet_version'] if mx else 'not run'}; "
        f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print(
        "Times: median [interquartile range] in ms of interleaved repeated calls after warm-up; speed-up ="
        " reference / ours, by median (by minimum; paired: median over rounds of reference / ours timed in"
        " the same round); "
        f"{_foreign_load(cpu_start)}"
    )
    for name, case in cases.items():
        s = case.stats
        print(
            f"  {name}: {CASE_DESCRIPTIONS[name]}; {s['gt_boxes_per_image']:.1f} GT boxes/image, "
            f"{s['anchors_above_thresh_per_image']:.0f} anchors and {s['candidates_per_image']:.0f} "
            "(anchor, class) pairs/image with foreground prob >= 0.01"
        )
    if ours is None:
        print(f"  ours: not available ({why})")
    print()
    cells = table(rows, device.type == "cpu")
    print_table(cells)

    if ours is not None:
        print("\nCross-checks (same inputs):")
        for name, out in outputs.items():
            positives = float((out["target"][2] > 0).sum(axis=1).mean())
            tv_positives = out["tv_positives"]
            print(f"  {name}: positives/image ours {positives:.1f}, torchvision matcher {tv_positives:.1f}")
            print(f"  {name}: {check_per_class(out['per_class'], out['tv_post'])}")
            if mx is not None:
                with np.load(paths[name].with_suffix(".mxnet.npz")) as mx_out:
                    print(f"  {name}: {check_target(out['target'], mx_out)}")
                    print(f"  {name}: {check_detection(out['mxnet_detection'], mx_out['detection'])}")

    if args.markdown:
        args.markdown.write_text(markdown(cells))
    if args.json:
        figures = [{**r.__dict__, "speedup": r.speedup, "paired_speedup": r.paired_speedup} for r in rows]
        args.json.write_text(
            json.dumps({"device": str(device), "batch": args.batch, "rows": figures}, indent=1)
        )


if __name__ == "__main__":
    main()
