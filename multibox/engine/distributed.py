"""Multi-process training with torch.distributed, launched by ``torchrun`` (one process per device)."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as torch_dist
from torch import nn

from multibox.engine.train_metrics import MultiBoxMetric


def pick_device(preference: str | None = None) -> torch.device:
    if preference:
        return torch.device(preference)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class DistributedContext:
    """Rank, world size and device of this process; a no-op single-process context outside ``torchrun``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    enabled: bool = False

    @classmethod
    def from_environment(cls, device: str | None = None) -> DistributedContext:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size <= 1:
            return cls(device=pick_device(device))
        rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        chosen = pick_device(device)
        if chosen.type == "cuda":
            chosen = torch.device("cuda", local_rank)
            torch.cuda.set_device(chosen)
        if not torch_dist.is_initialized():
            torch_dist.init_process_group(backend="nccl" if chosen.type == "cuda" else "gloo")
        return cls(rank=rank, world_size=world_size, device=chosen, enabled=True)

    def wrap(self, module: nn.Module) -> nn.Module:
        """DistributedDataParallel around ``module`` when running distributed (gradients averaged).

        Backbones stop at their last tapped layer, so later layers get no gradient: DDP is told to expect that.
        """
        if not self.enabled:
            return module
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=device_ids, find_unused_parameters=True)

    def reduce_metric(self, metric: MultiBoxMetric) -> dict[str, float]:
        """The metric over all ranks (sums of the per-rank accumulators)."""
        if self.enabled:
            totals = torch.tensor(
                [metric._cross_entropy, metric._smooth_l1, float(metric._count)],
                dtype=torch.float64,
                device=self._collective_device,
            )
            torch_dist.all_reduce(totals)
            metric._cross_entropy, metric._smooth_l1, metric._count = (
                totals[0].item(),
                totals[1].item(),
                int(totals[2].item()),
            )
        return metric.compute()

    def broadcast_object(self, obj: object) -> object:
        """Rank 0's ``obj`` on every rank (pickled between this run's own processes)."""
        if not self.enabled:
            return obj
        holder = [obj if self.rank == 0 else None]
        torch_dist.broadcast_object_list(holder, src=0)
        return holder[0]

    def all_ranks(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on every rank, so all ranks take the same branch."""
        return self._reduce_flag(flag, torch_dist.ReduceOp.MIN) if self.enabled else flag

    def any_rank(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is true on any rank."""
        return self._reduce_flag(flag, torch_dist.ReduceOp.MAX) if self.enabled else flag

    def _reduce_flag(self, flag: bool, op) -> bool:
        value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=self._collective_device)
        torch_dist.all_reduce(value, op=op)
        return bool(value.item())

    @property
    def _collective_device(self) -> torch.device:
        return self.device if self.device.type == "cuda" else torch.device("cpu")

    def barrier(self) -> None:
        if self.enabled:
            torch_dist.barrier()

    def close(self) -> None:
        if self.enabled and torch_dist.is_initialized():
            torch_dist.destroy_process_group()
