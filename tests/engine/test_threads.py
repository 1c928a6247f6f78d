"""Thread budgeting: threads for the cores other processes leave, /proc parsing, loader workers."""

from __future__ import annotations

import os

import pytest
import torch

from multibox.engine.threads import CpuShare, loader_workers, process_ticks, read_cpu_ticks, threads_for

STAT = """cpu  100 5 50 800 20 3 2 10 0 0
cpu0 50 2 25 400 10 1 1 5 0 0
cpu1 50 3 25 400 10 2 1 5 0 0
intr 12345
ctxt 999
"""


def test_proc_stat_is_read_as_busy_total_and_cpus():
    busy, total, cpus = read_cpu_ticks(STAT)
    assert busy == 100 + 5 + 50 + 3 + 2 + 10  # user nice system irq softirq steal
    assert total == busy + 800 + 20  # + idle + iowait
    assert cpus == 2


@pytest.mark.parametrize(
    ("cores", "others", "threads"),
    [(2, 0.0, 2), (2, 0.4, 2), (2, 0.6, 1), (2, 1.0, 1), (2, 2.0, 1), (16, 3.2, 13), (8, 0.0, 8)],
)
def test_threads_are_the_cores_others_leave(cores, others, threads):
    assert threads_for(cores, others) == threads


def test_loader_workers_leave_cpu_cores_to_the_network_and_feed_a_gpu():
    assert loader_workers(2, "cpu") == 1 and loader_workers(16, "cpu") == 4
    assert loader_workers(2, "cuda") == 1 and loader_workers(16, "cuda") == 8


def test_this_process_counts_its_own_cpu_time_and_a_busy_loop_is_not_someone_else():
    cores = len(os.sched_getaffinity(0))
    share = CpuShare(cores)
    before = process_ticks()
    x = torch.randn(300, 300)
    with torch.no_grad():
        for _ in range(400):  # about a second of this process's own work
            x = torch.tanh(x @ x.T / 300)
    assert process_ticks() > before
    others = share.others_busy(min_ticks=1)
    if others is not None:  # None where /proc/stat does not describe our cores (a CPU-limited container)
        assert 0.0 <= others <= cores


def test_the_budget_adjusts_within_the_first_epoch_when_a_look_is_due():
    from types import SimpleNamespace

    from multibox.engine.threads import ThreadBudget

    class Share:  # what /proc would say: nothing measurable yet, then another process holding 1.2 cores
        def __init__(self):
            self.answers, self.asked = [None, 1.2], []

        def others_busy(self, min_ticks):
            self.asked.append(min_ticks)
            return self.answers.pop(0)

    budget, threads = ThreadBudget(cores=2), torch.get_num_threads()
    budget.trainer = SimpleNamespace(dist=SimpleNamespace(rank=0))
    budget.share = Share()
    try:
        torch.set_num_threads(2)
        budget.before_epoch()  # too soon to tell: unchanged
        assert torch.get_num_threads() == 2
        budget.after_step()  # a look over a longer window, inside the epoch
        assert torch.get_num_threads() == threads_for(2, 1.2) == 1
        assert budget.share.asked == [50, 200]
    finally:
        torch.set_num_threads(threads)
