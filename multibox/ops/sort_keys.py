"""Integer sort keys that order float32 values as the floats themselves (packed with other fields)."""

from __future__ import annotations

import torch


def monotone_bits(values: torch.Tensor) -> torch.Tensor:
    """int64 of float32 ``values`` in the same order (signed, within the int32 range): the float's bits,
    with the magnitude bits of negative values flipped. Not recordable by the jit tracer (a dtype view)."""
    bits = values.float().contiguous().view(torch.int32)
    return torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits).long()
