"""The original's training metric (``MultiBoxMetric``): CrossEntropy and SmoothL1, averaged over the epoch."""

from __future__ import annotations

import torch


class MultiBoxMetric:
    """Running CrossEntropy and SmoothL1 as the original reports them, but over the whole epoch.

    CrossEntropy: mean of ``-log(p[target] + 1e-8)`` over anchors whose target is not -1 (positives and mined
    negatives). SmoothL1: the sum of the masked smooth-L1 elements divided by that same anchor count (as the
    original: per valid anchor, not per positive). The original reset both every ``frequent`` batches, so its
    epoch lines showed only the tail of the epoch; here ``reset()`` is called once per epoch.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._cross_entropy = 0.0
        self._smooth_l1 = 0.0
        self._count = 0

    @torch.no_grad()
    def update(self, cls_preds: torch.Tensor, cls_target: torch.Tensor, loc_elements: torch.Tensor) -> None:
        """Add a batch: logits ``(N, C+1, A)``, targets ``(N, A)`` (-1 ignored), smooth-L1 elements (any shape;
        only their sum counts, so the zero elements of non-positive anchors may be left out)."""
        target = cls_target.long()
        image_index, anchor_index = (target >= 0).nonzero(as_tuple=True)  # only these anchors count
        prob = torch.softmax(cls_preds[image_index, :, anchor_index].float(), dim=1)  # (P, C+1)
        picked = prob.gather(1, target[image_index, anchor_index].unsqueeze(1))
        self._cross_entropy += float(-torch.log(picked + 1e-8).sum())
        self._smooth_l1 += float(loc_elements.float().sum())
        self._count += len(image_index)

    def compute(self) -> dict[str, float]:
        count = max(1, self._count)
        return {"CrossEntropy": self._cross_entropy / count, "SmoothL1": self._smooth_l1 / count}
