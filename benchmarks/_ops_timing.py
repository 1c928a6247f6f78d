"""Wall-clock timing with warm-up and interleaving for ``benchmarks/ops.py``."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


class SelfTimed:
    """A callable that times its own work (e.g. in another process) and returns the duration in ms;
    :func:`measure` records that instead of the wall time of the call."""

    def __init__(self, fn: Callable[[], float]) -> None:
        self.fn = fn

    def __call__(self) -> float:
        return self.fn()


@dataclass(frozen=True)
class Timing:
    """Repeated wall-clock times of one callable, in milliseconds."""

    times_ms: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def quartiles(self) -> tuple[float, float]:
        """First and third quartile (both equal the single value when only one time was taken)."""
        if len(self.times_ms) < 2:
            return self.times_ms[0], self.times_ms[0]
        q1, _, q3 = statistics.quantiles(self.times_ms, n=4, method="inclusive")
        return q1, q3

    def as_dict(self) -> dict:
        q1, q3 = self.quartiles
        return {
            "median_ms": self.median,
            "q1_ms": q1,
            "q3_ms": q3,
            "min_ms": min(self.times_ms),
            "n": len(self.times_ms),
            "times_ms": list(self.times_ms),
        }


def measure(
    fns: dict[str, Callable[[], object]],
    *,
    sync: Callable[[], None] | None = None,
    warmup: int = 2,
    repeat: int = 15,
    min_repeat: int = 5,
    max_seconds: float = 60.0,
    on_done: Callable[[str, Timing], None] | None = None,
) -> dict[str, Timing]:
    """Time each callable ``repeat`` times after ``warmup`` untimed calls, interleaved round-robin.

    Interleaving spreads any background load on the machine evenly over the compared callables.
    ``sync`` is called before starting and before stopping each clock (a device synchronisation for
    asynchronous back ends). Stops after the round in which ``max_seconds`` have passed, once ``min_repeat``
    rounds are done. ``on_done(name, timing)`` is called for each callable at the end. A :class:`SelfTimed`
    callable reports its own duration.
    """
    sync = sync or (lambda: None)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    sync()
    gc.collect()
    times: dict[str, list[float]] = {name: [] for name in fns}
    started = time.perf_counter()
    for done in range(1, max(1, repeat) + 1):
        for name, fn in fns.items():
            if isinstance(fn, SelfTimed):
                times[name].append(float(fn()))
                continue
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append((time.perf_counter() - t0) * 1e3)
        if done >= min_repeat and time.perf_counter() - started > max_seconds:
            break
    timings = {name: Timing(tuple(t)) for name, t in times.items()}
    if on_done:
        for name, timing in timings.items():
            on_done(name, timing)
    return timings
