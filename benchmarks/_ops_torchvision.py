"""torchvision's SSD training-target and post-processing steps, called as ``SSD.forward`` calls them."""

from __future__ import annotations

import torch
from torchvision.models.detection import ssd300_vgg16
from torchvision.ops import boxes as box_ops


class TorchvisionSSD:
    """An ``ssd300_vgg16`` (random weights) whose match, loss and post-processing methods are timed.

    Its defaults are SSD300's: IoU 0.5 matcher, 3:1 hard negatives, score 0.01, NMS 0.45, 400 candidates
    per class, 200 detections per image.
    """

    def __init__(self, num_classes: int, device: torch.device) -> None:
        self.model = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=num_classes)
        self.model.to(device)

    def match(
        self, targets: list[dict[str, torch.Tensor]], anchors: list[torch.Tensor]
    ) -> list[torch.Tensor]:
        """Matched GT index per anchor (-1 background, -2 between thresholds), per image, as in forward."""
        matched = []
        for anchors_per_image, targets_per_image in zip(anchors, targets, strict=True):
            if targets_per_image["boxes"].numel() == 0:
                matched.append(
                    torch.full(
                        (anchors_per_image.size(0),), -1, dtype=torch.int64, device=anchors_per_image.device
                    )
                )
                continue
            quality = box_ops.box_iou(targets_per_image["boxes"], anchors_per_image)
            matched.append(self.model.proposal_matcher(quality))
        return matched

    def match_and_loss(
        self,
        targets: list[dict[str, torch.Tensor]],
        head_outputs: dict[str, torch.Tensor],
        anchors: list[torch.Tensor],
    ) -> dict[str, torch.Tensor]:
        """The training branch of ``SSD.forward`` after the head: per-image matching, then compute_loss."""
        return self.model.compute_loss(targets, head_outputs, anchors, self.match(targets, anchors))

    def postprocess(
        self,
        head_outputs: dict[str, torch.Tensor],
        anchors: list[torch.Tensor],
        image_shapes: list[tuple[int, int]],
    ) -> list[dict[str, torch.Tensor]]:
        """``SSD.postprocess_detections`` (softmax, decode, per-class top-k and batched NMS)."""
        return self.model.postprocess_detections(head_outputs, anchors, image_shapes)
