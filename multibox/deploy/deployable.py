"""The whole detector as one module with fixed-shape outputs: uint8 images in, boxes/scores/classes/count out.

This is what ``multibox export`` writes to ONNX and TorchScript, and it also runs in eager PyTorch, so the
three can be compared output for output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from multibox.deploy.fixed_nms import greedy_nms_sorted
from multibox.model.detection_settings import DetectionSettings
from multibox.ops.first_max import max_with_first_index


class Postprocess(nn.Module):
    """Softmax, box decoding, candidate selection, NMS and the final top-k, all with static shapes.

    ``forward(loc_preds (N, 4A), cls_preds (N, C+1, A))`` returns ``boxes (N, K, 4)`` normalised corners,
    ``scores (N, K)``, ``classes (N, K)`` int64 0-based (-1 on padding rows) and ``count (N,)`` int64, the
    number of real rows, which come first in descending score order. ``K = max_detections`` (or fewer when
    there are fewer candidates). Scriptable with ``torch.jit.script``.
    """

    def __init__(
        self, anchors: torch.Tensor, num_classes: int, settings: DetectionSettings, variances
    ) -> None:
        super().__init__()
        anchors = anchors.float()
        # The decoding's operation order is the original's (multibox.ops.boxes.decode_boxes).
        self.register_buffer("anchor_width", anchors[:, 2] - anchors[:, 0], persistent=False)
        self.register_buffer("anchor_height", anchors[:, 3] - anchors[:, 1], persistent=False)
        self.register_buffer("anchor_cx", (anchors[:, 0] + anchors[:, 2]) / 2, persistent=False)
        self.register_buffer("anchor_cy", (anchors[:, 1] + anchors[:, 3]) / 2, persistent=False)
        self.variances = [float(v) for v in variances]
        self.num_anchors = int(anchors.shape[0])
        self.num_classes = int(num_classes)
        self.threshold = float(settings.threshold)
        self.nms_threshold = float(settings.nms_threshold)
        self.do_nms = 0 < settings.nms_threshold <= 1
        self.per_class = bool(settings.per_class)
        self.force_suppress = bool(settings.force_suppress)
        self.topk = min(int(settings.nms_topk), self.num_anchors)
        pool = self.topk * (self.num_classes if self.per_class else 1)
        self.max_detections = pool if settings.max_detections is None else min(settings.max_detections, pool)

    def decode(self, loc_preds: torch.Tensor) -> torch.Tensor:
        """``(N, 4A)`` offsets -> ``(N, A, 4)`` corners clipped to the image."""
        offsets = loc_preds.float().reshape(loc_preds.shape[0], self.num_anchors, 4)
        vx, vy, vw, vh = self.variances[0], self.variances[1], self.variances[2], self.variances[3]
        cx = offsets[..., 0] * vx * self.anchor_width + self.anchor_cx
        cy = offsets[..., 1] * vy * self.anchor_height + self.anchor_cy
        half_w = torch.exp(offsets[..., 2] * vw) * self.anchor_width / 2
        half_h = torch.exp(offsets[..., 3] * vh) * self.anchor_height / 2
        return torch.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], dim=-1).clamp(0.0, 1.0)

    def nms_keep(
        self, boxes: torch.Tensor, scores: torch.Tensor, active: torch.Tensor, groups: torch.Tensor
    ) -> torch.Tensor:
        """Survivors ``(B, P)`` of NMS over score-sorted candidates ``boxes (B, P, 4)`` within ``groups``.

        The active candidates are a prefix of each row (scores descending, threshold), so the pairwise work is
        cut to the longest prefix: a data-dependent size, fine in eager and TorchScript.
        """
        width = int(active.sum(dim=1).max()) if active.numel() > 0 else 0
        keep = torch.zeros_like(active)
        if width > 0:
            keep[:, :width] = greedy_nms_sorted(
                boxes[:, :width], active[:, :width], groups[:, :width], self.nms_threshold
            )
        return keep

    def forward(
        self, loc_preds: torch.Tensor, cls_preds: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        n = loc_preds.shape[0]
        boxes = self.decode(loc_preds)  # (N, A, 4)
        foreground = cls_preds.float().softmax(dim=1)[:, 1:, :]  # (N, C, A)
        if self.per_class:
            scores, anchor = foreground.topk(self.topk, dim=2)  # (N, C, T), descending per class
            classes = torch.arange(self.num_classes, device=boxes.device).view(1, -1, 1).expand_as(anchor)
            scores, anchor, classes = scores.reshape(n, -1), anchor.reshape(n, -1), classes.reshape(n, -1)
            if self.force_suppress:  # one pool across classes, re-sorted by score
                scores, order = scores.sort(dim=1, descending=True)
                anchor = torch.gather(anchor, 1, order)
                classes = torch.gather(classes, 1, order)
            groups = torch.zeros_like(classes)
        else:  # the original's decoding: the best foreground class of each anchor
            best, best_class = max_with_first_index(foreground)  # (N, A) each, as multibox_detection
            key = torch.where(best >= self.threshold, best, torch.full_like(best, -1.0))
            scores, anchor = key.topk(self.topk, dim=1)  # (N, T)
            classes = torch.gather(best_class, 1, anchor)
            groups = torch.zeros_like(classes) if self.force_suppress else classes
        # candidates (N, pool); NMS runs on (B, P) = (N * C, T) for per-class NMS, else (N, pool)
        candidate_boxes = torch.gather(boxes, 1, anchor.unsqueeze(-1).expand(-1, -1, 4))  # (N, pool, 4)
        active = scores >= self.threshold
        if not self.do_nms:
            keep = active
        elif self.per_class and not self.force_suppress:
            keep = self.nms_keep(
                candidate_boxes.reshape(-1, self.topk, 4),
                scores.reshape(-1, self.topk),
                active.reshape(-1, self.topk),
                groups.reshape(-1, self.topk),
            ).reshape(n, -1)
        else:
            keep = self.nms_keep(candidate_boxes, scores, active, groups)

        kept = torch.where(keep, scores, torch.full_like(scores, -1.0))  # (N, pool)
        final_scores, position = kept.topk(self.max_detections, dim=1)  # (N, K)
        valid = final_scores >= 0
        final_boxes = torch.gather(candidate_boxes, 1, position.unsqueeze(-1).expand(-1, -1, 4))
        final_classes = torch.gather(classes, 1, position)
        zeros = torch.zeros_like(final_scores)
        return (
            torch.where(valid.unsqueeze(-1), final_boxes, zeros.unsqueeze(-1)),
            torch.where(valid, final_scores, zeros),
            torch.where(valid, final_classes, torch.full_like(final_classes, -1)),
            valid.long().sum(dim=1),
        )


class OnnxPostprocess(Postprocess):
    """:class:`Postprocess` whose NMS becomes ONNX's ``NonMaxSuppression`` operator when exported."""

    def nms_keep(
        self, boxes: torch.Tensor, scores: torch.Tensor, active: torch.Tensor, groups: torch.Tensor
    ) -> torch.Tensor:
        from multibox.deploy.fixed_nms import onnx_non_max_suppression

        batch, num = scores.shape
        masked = torch.where(active, scores, torch.full_like(scores, -1.0))
        if self.force_suppress or self.per_class:
            by_group = masked.unsqueeze(1)  # (B, 1, P)
        else:
            class_ids = torch.arange(self.num_classes, device=scores.device).view(1, -1, 1)
            by_group = torch.where(groups.unsqueeze(1) == class_ids, masked.unsqueeze(1), -1.0)  # (B, C, P)
        selected = onnx_non_max_suppression(boxes, by_group, self.nms_threshold, -0.5)  # (K, 3)
        flat = selected[:, 0] * num + selected[:, 2]
        keep = torch.zeros(batch * num, dtype=torch.bool, device=scores.device)
        keep = keep.index_put((flat,), torch.ones_like(flat, dtype=torch.bool))
        return keep.view(batch, num)


class DeployableSSD(nn.Module):
    """Preprocessing + SSD + :class:`Postprocess`: ``images (N, 3, H, W) uint8 RGB`` of any size ->
    ``boxes (N, K, 4)`` normalised corners, ``scores (N, K)``, ``classes (N, K)``, ``count (N,)``.

    Images are resized to ``data_shape`` inside: bilinear with antialiasing, which is Pillow's bilinear
    resize (the data loader's) within rounding, and exports to ONNX ``Resize(antialias=1)``.
    """

    def __init__(
        self,
        model: nn.Module,
        settings: DetectionSettings | None = None,
        data_shape: tuple[int, int] | None = None,
        onnx_nms: bool = False,
    ) -> None:
        super().__init__()
        from multibox.ops.boxes import VARIANCES

        self.settings = settings or model.detection
        self.data_shape = tuple(int(s) for s in (data_shape or model.data_shape))
        self.network = model
        anchors = model.anchors_for(*self.data_shape).detach().cpu()
        make = OnnxPostprocess if onnx_nms else Postprocess
        self.postprocess = make(anchors, model.num_classes, self.settings, VARIANCES)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.interpolate(
            images.float(), size=self.data_shape, mode="bilinear", align_corners=False, antialias=True
        )
        loc_preds, cls_preds = self.network(x / 255.0)
        return self.postprocess(loc_preds, cls_preds)
