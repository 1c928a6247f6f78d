"""The SSD training loss: softmax cross-entropy on classes plus smooth-L1 on box offsets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from multibox.ops._checks import check_rank

NORMALIZATIONS = ("valid", "num_pos")


def smooth_l1(x: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """MXNet's ``smooth_l1``: ``0.5 (sigma x)^2`` if ``|x| < 1 / sigma^2`` else ``|x| - 0.5 / sigma^2``."""
    s2 = sigma * sigma
    ax = x.abs()
    return torch.where(ax < 1.0 / s2, 0.5 * s2 * x * x, ax - 0.5 / s2)


def multibox_loss(
    cls_preds: torch.Tensor,
    loc_preds: torch.Tensor,
    cls_target: torch.Tensor,
    loc_target: torch.Tensor,
    loc_mask: torch.Tensor,
    normalization: str = "valid",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Classification and localisation loss of ``get_symbol_train``.

    ``normalization="valid"`` reproduces the original: the summed cross-entropy over anchors whose target is
    not -1 divided by their count (``SoftmaxOutput(normalization='valid')``), and the summed smooth-L1 of
    ``loc_mask * (loc_preds - loc_target)`` divided by its number of non-zero elements (``MakeLoss``), both
    counts over the whole batch and treated as constants. ``"num_pos"`` divides both sums by the number of
    positive anchors, as caffe SSD and torchvision.

    Args:
        cls_preds: ``(N, C+1, A)`` logits; loc_preds: ``(N, 4A)`` or ``(N, A, 4)``.
        cls_target: ``(N, A)`` with -1 ignored, 0 background, ``c + 1`` class ``c``.
        loc_target, loc_mask: ``(N, 4A)`` from :func:`multibox_target`.

    Returns:
        ``(cls_loss, loc_loss)``, float32 scalars.
    """
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"normalization must be one of {NORMALIZATIONS}, got {normalization!r}")
    check_rank("cls_preds", cls_preds, (3,))
    n, _, num_anchors = cls_preds.shape
    loc_preds = loc_preds.reshape(n, -1)
    for name, tensor in (("loc_preds", loc_preds), ("loc_target", loc_target), ("loc_mask", loc_mask)):
        if tuple(tensor.shape) != (n, 4 * num_anchors):
            raise ValueError(f"{name} must have shape {(n, 4 * num_anchors)}, got {tuple(tensor.shape)}")
    if tuple(cls_target.shape) != (n, num_anchors):
        raise ValueError(f"cls_target must have shape {(n, num_anchors)}, got {tuple(cls_target.shape)}")

    target = cls_target.long()
    # Only anchors with a target contribute (positives and mined negatives: a few percent of all anchors).
    image_index, anchor_index = (target != -1).nonzero(as_tuple=True)
    picked = cls_preds[image_index, :, anchor_index].float()  # (P, C+1)
    cls_sum = F.cross_entropy(picked, target[image_index, anchor_index], reduction="sum")
    # Only the masked elements (the positives' offsets) can be non-zero: find them once, gather three times.
    where = loc_mask.reshape(-1).nonzero().squeeze(1)  # no separate `!= 0` pass over the 4A mask
    picked_mask, picked_target = loc_mask.reshape(-1)[where].float(), loc_target.reshape(-1)[where].float()
    diff = picked_mask * (loc_preds.reshape(-1)[where].float() - picked_target)
    loc_elements = smooth_l1(diff)
    loc_sum = loc_elements.sum()
    if normalization == "valid":
        cls_count = torch.tensor(len(image_index), device=cls_preds.device)
        loc_count = (loc_elements.detach() > 0).sum()
    else:
        cls_count = loc_count = (target > 0).sum()
    cls_loss = cls_sum / cls_count.clamp_min(1)
    loc_loss = loc_sum / loc_count.clamp_min(1)
    return cls_loss, loc_loss
