"""SGD with momentum as MXNet updates it: the learning rate goes inside the momentum buffer."""

from __future__ import annotations

import torch


class MXNetSGD(torch.optim.Optimizer):
    """``state = momentum * state + lr * (grad + wd * w); w -= state`` (MXNet 1.x ``sgd_mom_update``).

    With a constant learning rate this is PyTorch's SGD exactly (PyTorch's buffer is MXNet's divided by lr);
    when the rate changes (a step decay), MXNet's buffer still carries the old rate for a while, PyTorch's
    applies the new one to the whole buffer at once. Per-group ``lr`` and ``weight_decay`` as usual.
    """

    def __init__(self, params, lr: float = 0.002, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError(
                f"lr, momentum and weight_decay must be >= 0, got {lr}, {momentum}, {weight_decay}"
            )
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if group["weight_decay"]:
                grads = torch._foreach_add(grads, params, alpha=group["weight_decay"])
            buffers = []
            for p in params:
                state = self.state[p]
                if "momentum_buffer" not in state:
                    state["momentum_buffer"] = torch.zeros_like(p)
                buffers.append(state["momentum_buffer"])
            torch._foreach_mul_(buffers, group["momentum"])
            torch._foreach_add_(buffers, grads, alpha=group["lr"])
            torch._foreach_sub_(params, buffers)
        return loss
