"""The SSD300 benchmark inputs: anchors of the vgg16_reduced 300 preset and seeded random batches."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import torch

from multibox.ops import multibox_prior

# vgg16_reduced at data_shape 300 (spec section 2.1): map size, sizes, ratios, step in pixels.
_THIRD = 1.0 / 3.0
SSD300_LAYERS = (
    (38, (0.1, 0.141), (1.0, 2.0, 0.5), 8),
    (19, (0.2, 0.272), (1.0, 2.0, 0.5, 3.0, _THIRD), 16),
    (10, (0.37, 0.447), (1.0, 2.0, 0.5, 3.0, _THIRD), 32),
    (5, (0.54, 0.619), (1.0, 2.0, 0.5, 3.0, _THIRD), 64),
    (3, (0.71, 0.79), (1.0, 2.0, 0.5), 100),
    (1, (0.88, 0.961), (1.0, 2.0, 0.5), 300),
)
IMAGE_SIZE = 300
NUM_CLASSES = 20  # foreground classes; the networks predict NUM_CLASSES + 1 scores per anchor
MAX_BOXES = 7

CASE_DESCRIPTIONS = {
    "random": "random logits N(0,1) for every class and anchor",
    "trained": "trained-like: background dominant (+8) except a few hundred confident anchors per image",
}


def ssd300_anchors() -> torch.Tensor:
    """The 8732 anchors of the SSD300 preset, ``(A, 4)`` normalised corners, in MXNet's order."""
    parts = [
        multibox_prior((n, n), sizes, ratios, steps=(step / IMAGE_SIZE, step / IMAGE_SIZE))
        for n, sizes, ratios, step in SSD300_LAYERS
    ]
    return torch.cat(parts)


@dataclass
class Case:
    """One batch of benchmark inputs as numpy float32 arrays (layouts of MXNet's operators)."""

    name: str
    anchors: np.ndarray  # (A, 4)
    labels: np.ndarray  # (N, MAX_BOXES, 5) rows [cls, x1, y1, x2, y2], padding rows -1
    cls_logits: np.ndarray  # (N, C+1, A)
    cls_prob: np.ndarray  # (N, C+1, A), softmax of cls_logits over the class axis
    loc_pred: np.ndarray  # (N, 4A)
    stats: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        return self.labels.shape[0]


def _random_labels(rng: np.random.Generator, batch: int) -> np.ndarray:
    """1 to 7 boxes per image: log-uniform scale .04-.8 and aspect 1/3-3, fully inside the image."""
    labels = np.full((batch, MAX_BOXES, 5), -1.0, dtype=np.float32)
    for n in range(batch):
        count = int(rng.integers(1, MAX_BOXES + 1))
        scale = np.exp(rng.uniform(np.log(0.04), np.log(0.8), count))
        aspect = np.exp(rng.uniform(np.log(_THIRD), np.log(3.0), count))
        w = np.minimum(scale * np.sqrt(aspect), 0.98)
        h = np.minimum(scale / np.sqrt(aspect), 0.98)
        cx = rng.uniform(w / 2, 1 - w / 2)
        cy = rng.uniform(h / 2, 1 - h / 2)
        labels[n, :count, 0] = rng.integers(0, NUM_CLASSES, count)
        labels[n, :count, 1:] = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return labels


def _iou(anchors: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU matrix ``(A, G)`` of corner boxes."""
    lt = np.maximum(anchors[:, None, :2], boxes[None, :, :2])
    rb = np.minimum(anchors[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(anchors[:, 2:] - anchors[:, :2], axis=1)
    area_b = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area_a[:, None] + area_b[None, :] - inter)


def _trained_like_logits(rng: np.random.Generator, anchors: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Background-dominated logits with confident detections around the ground truth plus distractors.

    Per image: anchors with IoU >= 0.4 to a GT box (at most 250) score that box's class, 50 random anchors
    score a random class (false positives), each with a logit boost U(3, 8); every other anchor gets +8 on
    the background logit.
    """
    batch, num_anchors = labels.shape[0], anchors.shape[0]
    logits = rng.standard_normal((batch, NUM_CLASSES + 1, num_anchors), dtype=np.float32)
    for n in range(batch):
        valid = labels[n, :, 0] >= 0
        iou = _iou(anchors, labels[n, valid, 1:])
        best_iou, best_gt = iou.max(axis=1), iou.argmax(axis=1)
        hits = np.flatnonzero(best_iou >= 0.4)
        hits = hits[np.argsort(-best_iou[hits], kind="stable")[:250]]
        classes = labels[n, valid, 0].astype(np.int64)[best_gt[hits]] + 1
        distractors = rng.choice(np.setdiff1d(np.arange(num_anchors), hits), 50, replace=False)
        fg = np.concatenate([hits, distractors])
        fg_cls = np.concatenate([classes, rng.integers(1, NUM_CLASSES + 1, distractors.size)])
        background = np.ones(num_anchors, dtype=bool)
        background[fg] = False
        logits[n, 0, background] += 8.0
        logits[n, fg_cls, fg] += rng.uniform(3.0, 8.0, fg.size).astype(np.float32)
    return logits


def make_case(name: str, batch: int, anchors: torch.Tensor, seed: int = 0) -> Case:
    """Build case ``name`` ("random" or "trained"); same seed gives the same boxes in both cases."""
    if name not in CASE_DESCRIPTIONS:
        raise ValueError(f"unknown case {name!r}; choose from {sorted(CASE_DESCRIPTIONS)}")
    rng = np.random.default_rng(seed)
    anchors_np = anchors.detach().cpu().numpy().astype(np.float32)
    num_anchors = anchors_np.shape[0]
    labels = _random_labels(rng, batch)
    loc_pred = (0.5 * rng.standard_normal((batch, 4 * num_anchors))).astype(np.float32)
    if name == "random":
        logits = rng.standard_normal((batch, NUM_CLASSES + 1, num_anchors), dtype=np.float32)
    else:
        logits = _trained_like_logits(rng, anchors_np, labels)
    prob = torch.softmax(torch.from_numpy(logits), dim=1).numpy()
    fg_prob = prob[:, 1:, :]
    stats = {
        "gt_boxes_per_image": float((labels[:, :, 0] >= 0).sum(axis=1).mean()),
        "candidates_per_image": float((fg_prob > 0.01).sum(axis=(1, 2)).mean()),
        "anchors_above_thresh_per_image": float((fg_prob.max(axis=1) >= 0.01).sum(axis=1).mean()),
    }
    return Case(name, anchors_np, labels, logits, prob, loc_pred, stats)


def save_case(case: Case, path, target_params: dict, detection_params: dict) -> None:
    """Write the case and the operator parameters to an npz for the MXNet subprocess."""
    np.savez(
        path,
        anchors=case.anchors,
        labels=case.labels,
        cls_logits=case.cls_logits,
        cls_prob=case.cls_prob,
        loc_pred=case.loc_pred,
        params=np.array(json.dumps({"target": target_params, "detection": detection_params})),
    )
