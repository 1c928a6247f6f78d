"""A small, self-contained tour of the MultiBox operators on the SSD300 anchor layout (no data needed)."""

from __future__ import annotations

import time

import torch

from multibox.ops import multibox_detection, multibox_loss, multibox_prior, multibox_target

# vgg16_reduced SSD300 (spec table 2.1): map size, sizes, ratios, step in pixels
SSD300_LAYOUT = [
    (38, (0.1, 0.141), (1, 2, 0.5), 8),
    (19, (0.2, 0.272), (1, 2, 0.5, 3, 1 / 3), 16),
    (10, (0.37, 0.447), (1, 2, 0.5, 3, 1 / 3), 32),
    (5, (0.54, 0.619), (1, 2, 0.5, 3, 1 / 3), 64),
    (3, (0.71, 0.79), (1, 2, 0.5), 100),
    (1, (0.88, 0.961), (1, 2, 0.5), 300),
]
CLASS_NAMES = ("cat", "dog", "person")


def ssd300_anchors() -> torch.Tensor:
    """The 8732 anchors of SSD300, ``(8732, 4)``."""
    return torch.cat(
        [multibox_prior((m, m), s, r, steps=(st / 300, st / 300)) for m, s, r, st in SSD300_LAYOUT]
    )


def run_demo(seed: int = 0) -> None:
    torch.manual_seed(seed)
    anchors = ssd300_anchors()  # (A, 4)
    num_anchors = anchors.shape[0]
    print(f"SSD300 anchors: {num_anchors} (maps {', '.join(f'{m}x{m}' for m, *_ in SSD300_LAYOUT)})")

    labels = torch.tensor(
        [[[0, 0.10, 0.15, 0.45, 0.70], [1, 0.55, 0.40, 0.95, 0.90], [2, 0.05, 0.75, 0.20, 0.98]]]
    )  # (1, 3, 5) [cls, x1, y1, x2, y2]
    logits = torch.randn(1, len(CLASS_NAMES) + 1, num_anchors)  # an untrained network's class logits
    start = time.perf_counter()
    loc_target, loc_mask, cls_target = multibox_target(anchors, labels, logits, negative_mining_ratio=3)
    elapsed = (time.perf_counter() - start) * 1e3
    positives = int((cls_target > 0).sum())
    negatives = int((cls_target == 0).sum())
    print(
        f"multibox_target: {positives} positive anchors, {negatives} hard negatives, "
        f"{num_anchors - positives - negatives} ignored ({elapsed:.1f} ms)"
    )
    cls_loss, loc_loss = multibox_loss(
        logits, torch.zeros(1, 4 * num_anchors), cls_target, loc_target, loc_mask
    )
    print(f"multibox_loss of an untrained network: cls {cls_loss.item():.3f}, loc {loc_loss.item():.3f}")

    # A "network" that has learnt the targets, plus noise: confident on positives, background elsewhere.
    matched = cls_target.clamp_min(0).long()  # (1, A)
    good_logits = torch.nn.functional.one_hot(matched, len(CLASS_NAMES) + 1).permute(0, 2, 1).float() * 6
    good_logits += torch.randn_like(good_logits) * 0.5
    offsets = loc_target.view(1, num_anchors, 4) + torch.randn(1, num_anchors, 4) * 0.1
    cls_prob = torch.softmax(good_logits, dim=1)
    start = time.perf_counter()
    detections = multibox_detection(
        cls_prob, offsets, anchors, nms_threshold=0.45, nms_topk=400, threshold=0.5
    )
    elapsed = (time.perf_counter() - start) * 1e3
    kept = detections[0][detections[0, :, 0] >= 0]
    print(f"multibox_detection: {len(kept)} detections after NMS ({elapsed:.1f} ms)")
    print("  class     score   x1     y1     x2     y2")
    for row in kept[:8]:
        cls, score, *box = row.tolist()
        print(f"  {CLASS_NAMES[int(cls)]:<8} {score:6.3f}  " + "  ".join(f"{v:.3f}" for v in box))
    print("ground truth:")
    for row in labels[0]:
        cls, *box = row.tolist()
        print(f"  {CLASS_NAMES[int(cls)]:<8}         " + "  ".join(f"{v:.3f}" for v in box))
