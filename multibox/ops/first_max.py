"""The maximum over one axis together with the index of its first occurrence, fast on CPU."""

from __future__ import annotations

import torch


def max_with_first_index(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over dim 1 of ``(N, C, A)`` and the index of its first occurrence, ``(N, A)`` each.

    Same result as ``max(dim=1)``/``argmax``, several times faster on CPU than reducing the strided
    middle axis with them: ``amax`` finds the value, and a second ``amax`` over countdown weights
    ``[C, C-1, ..., 1]`` on the positions equal to it finds the first one.
    """
    num_rows = values.shape[1]
    best = values.amax(dim=1)  # (N, A)
    rank_dtype = torch.uint8 if num_rows < 256 else torch.int32
    countdown = torch.arange(num_rows, 0, -1, dtype=rank_dtype, device=values.device).view(1, -1, 1)
    first = num_rows - ((values == best.unsqueeze(1)) * countdown).amax(dim=1).long()
    return best, first
