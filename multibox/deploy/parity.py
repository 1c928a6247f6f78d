"""Do two detectors agree? Row matching that tolerates float noise and the order of near-equal scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Agreement:
    """Outcome of :func:`compare_detections`: ``ok`` when every image matched row for row."""

    images: int
    mismatched_images: list[int]
    max_box_error: float
    max_score_error: float

    @property
    def ok(self) -> bool:
        return not self.mismatched_images

    def __str__(self) -> str:
        verdict = "agree" if self.ok else f"DISAGREE on images {self.mismatched_images[:10]}"
        return (
            f"{verdict} ({self.images} images, max box error {self.max_box_error:.2e}, "
            f"max score error {self.max_score_error:.2e})"
        )


def compare_detections(
    reference: np.ndarray, other: np.ndarray, box_tolerance: float = 1e-3, score_tolerance: float = 1e-4
) -> Agreement:
    """Match ``(N, K, 6)`` detection rows ``[class, score, x1, y1, x2, y2]`` (class < 0: empty) image by image.

    Images agree when they have the same number of rows and each reference row pairs with a distinct row of
    ``other`` of the same class, score within ``score_tolerance`` and box corners within ``box_tolerance``
    relative (``|a - b| <= tol * max(1, |a|)``).
    """
    mismatched, box_error, score_error = [], 0.0, 0.0
    for i, (ref, oth) in enumerate(zip(reference, other, strict=True)):
        ref, oth = ref[ref[:, 0] >= 0], oth[oth[:, 0] >= 0]
        if len(ref) != len(oth):
            mismatched.append(i)
            continue
        if not len(ref):
            continue
        same_class = ref[:, None, 0] == oth[None, :, 0]  # (K, K)
        score_gap = np.abs(ref[:, None, 1] - oth[None, :, 1])
        box_gap = (
            np.abs(ref[:, None, 2:] - oth[None, :, 2:]) / np.maximum(1.0, np.abs(ref[:, None, 2:]))
        ).max(-1)
        fits = same_class & (score_gap <= score_tolerance) & (box_gap <= box_tolerance)
        cost = np.where(fits, score_gap + box_gap, np.inf)
        taken = np.zeros(len(oth), bool)
        for r in np.argsort(-ref[:, 1], kind="stable"):  # greedy, best reference rows first
            options = np.where(taken, np.inf, cost[r])
            j = int(options.argmin())
            if not np.isfinite(options[j]):
                mismatched.append(i)
                break
            taken[j] = True
            box_error = max(box_error, float(box_gap[r, j]))
            score_error = max(score_error, float(score_gap[r, j]))
    return Agreement(len(reference), mismatched, box_error, score_error)
