"""The maximum over one axis together with the index of its first occurrence, fast on CPU."""

from __future__ import annotations

import torch


def max_with_first_index(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Max over dim 1 of ``(N, C, A)`` and the index of its first occurrence, ``(N, A)`` each.

    Same result as ``max(dim=1)``/``argmax``, several times faster on CPU than reducing the strided
    middle axis with them: ``amax`` finds the value, and a second ``amax`` over countdown weights
    ``[C, C-1, ..., 1]`` on the positions equal to it finds the first one.
    """
    best = values.amax(dim=1)  # (N, A)
    return best, first_index_of(values, best)


def first_index_of(values: torch.Tensor, best: torch.Tensor) -> torch.Tensor:
    """Index over dim 1 of ``values (N, C, A)`` where ``best (N, A)`` first occurs, ``(N, A)`` int64; ``C``
    where it does not occur: an ``amax`` over countdown weights ``[C, C-1, ..., 1]`` on the positions equal
    to it."""
    num_rows = values.shape[1]
    rank_dtype = torch.uint8 if num_rows < 256 else torch.int32
    countdown = torch.arange(num_rows, 0, -1, dtype=rank_dtype, device=values.device).view(1, -1, 1)
    return num_rows - ((values == best.unsqueeze(1)) * countdown).amax(dim=1).long()
