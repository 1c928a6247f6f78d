"""Input checks shared by the MultiBox operators: clear ``ValueError``s instead of silent NaNs."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def check_rank(name: str, tensor: torch.Tensor, ranks: Sequence[int]) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dim() not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ValueError(f"{name} must have rank {want}, got shape {tuple(tensor.shape)}")


def check_finite(name: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        bad = (~torch.isfinite(tensor)).nonzero()[0].tolist()
        raise ValueError(f"{name} contains NaN or Inf (first at index {bad})")


def check_positive_floats(name: str, values: Sequence[float], length: int | None = None) -> tuple[float, ...]:
    values = tuple(float(v) for v in values)
    if length is not None and len(values) != length:
        raise ValueError(f"{name} must have {length} values, got {len(values)}")
    if not values or any(not v > 0 for v in values):
        raise ValueError(f"{name} must be non-empty and strictly positive, got {values}")
    return values


def as_anchor_matrix(anchors: torch.Tensor) -> torch.Tensor:
    """Accept anchors as (A, 4) or MXNet's (1, A, 4); return (A, 4)."""
    check_rank("anchors", anchors, (2, 3))
    if anchors.dim() == 3:
        if anchors.shape[0] != 1:
            raise ValueError(f"anchors of rank 3 must have batch size 1, got shape {tuple(anchors.shape)}")
        anchors = anchors[0]
    if anchors.shape[-1] != 4:
        raise ValueError(f"anchors must have 4 coordinates in the last dimension, got {tuple(anchors.shape)}")
    return anchors
