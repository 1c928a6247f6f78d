"""Thread budgeting: loader workers plus intra-op threads that fit the cores, and fewer threads when other
processes take cores.

PyTorch's intra-op threads meet at a barrier after every parallel operator, so when another process holds one
of the cores a thread is descheduled and every operator waits for it: two threads on two cores, one of them
shared, run several times slower than one thread would. :class:`ThreadBudget` measures, at every epoch's start
and every few seconds within an epoch, how much CPU the other processes of the machine used since the last
look (``/proc/stat`` less this process and its loader workers) and sets the intra-op threads to the cores they
left, so a shared machine slows training in proportion instead of collapsing it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from multibox.engine.train_logs import log
from multibox.engine.trainer import HookBase


def cpu_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def loader_workers(cores: int, device_type: str) -> int:
    """Default training loader workers: feeding a GPU takes cores (up to 8, one left to the main process); on
    a CPU the network's own threads need them, and one worker per four cores keeps up with the augmentation."""
    if device_type == "cuda":
        return max(1, min(8, cores - 1))
    return max(1, cores // 4)


def threads_for(cores: int, others_busy: float) -> int:
    """Intra-op threads for ``cores`` of which other processes keep ``others_busy`` (cores' worth) busy: the
    cores they leave, rounded (a core more than half taken counts as taken), at least one."""
    return max(1, min(cores, round(cores - others_busy)))


def read_cpu_ticks(stat: str) -> tuple[int, int, int]:
    """``(busy, total, cpus)`` clock ticks from the text of ``/proc/stat``: busy = user + nice + system + irq +
    softirq + steal, total = busy + idle + iowait, cpus = the number of ``cpuN`` lines."""
    lines = stat.splitlines()
    fields = [int(v) for v in lines[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields + [0] * (8 - len(fields))
    busy = user + nice + system + irq + softirq + steal
    cpus = sum(1 for line in lines[1:] if line.startswith("cpu") and line[3:4].isdigit())
    return busy, busy + idle + iowait, cpus


def process_ticks(pid: int | str = "self") -> int:
    """User + system clock ticks of process ``pid`` and all its descendants (loader workers), from ``/proc``."""
    total, pending = 0, [str(pid)]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14, 15 of proc(5))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += (task / "children").read_text().split()
        except (OSError, IndexError, ValueError):
            continue
    return total


class CpuShare:
    """How many cores' worth the machine's other processes used between two calls of :meth:`others_busy`;
    ``None`` where ``/proc`` does not describe this process's cores (not Linux, a CPU-limited container)."""

    def __init__(self, cores: int) -> None:
        self.cores = cores
        self.last = self._sample()

    def _sample(self) -> tuple[int, int, int] | None:
        try:
            busy, total, cpus = read_cpu_ticks(Path("/proc/stat").read_text())
        except (OSError, ValueError, IndexError):
            return None
        return (busy, total, process_ticks()) if cpus == self.cores else None

    def others_busy(self, min_ticks: int = 50) -> float | None:
        """Cores' worth of other processes' use since the last call that measured (intervals of under
        ``min_ticks`` clock ticks per core are too short to tell, and keep counting)."""
        now, last = self._sample(), self.last
        if now is None or last is None:
            self.last = now
            return None
        if now[1] - last[1] < min_ticks * self.cores:
            return None
        self.last = now
        others = max(0, (now[0] - last[0]) - (now[2] - last[2]))
        return self.cores * others / (now[1] - last[1])


class ThreadBudget(HookBase):
    """Sets the intra-op threads at every epoch's start to the cores other processes left (``threads``: a
    fixed number instead, never changed)."""

    def __init__(self, threads: int | None = None, cores: int | None = None) -> None:
        self.fixed, self.cores = threads, cores or cpu_cores()
        self.share: CpuShare | None = None

    def before_train(self) -> None:
        if self.trainer.dist.device.type != "cpu":
            return
        if self.fixed is not None:
            torch.set_num_threads(self.fixed)
            return
        torch.set_num_threads(self.cores)
        self.share = CpuShare(self.cores)

    def before_epoch(self) -> None:
        self._adjust(min_ticks=50)

    def after_step(self) -> None:
        self._adjust(
            min_ticks=200
        )  # within an epoch: looks over 2 s (at 100 ticks/s), so the first is not lost

    def _adjust(self, min_ticks: int) -> None:
        if self.share is None:
            return
        others = self.share.others_busy(min_ticks)
        if others is None:
            return
        threads = threads_for(self.cores, others)
        if threads != torch.get_num_threads():
            log(
                f"other processes use {others:.1f} of {self.cores} cores: {threads} intra-op threads",
                self.trainer.dist.rank,
            )
            torch.set_num_threads(threads)
