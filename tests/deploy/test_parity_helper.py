"""compare_detections, on hand-made rows."""

from __future__ import annotations

import numpy as np

from multibox.deploy.parity import compare_detections

ROWS = np.array(
    [
        [[0, 0.9, 0.1, 0.1, 0.4, 0.4], [2, 0.5, 0.5, 0.5, 0.9, 0.8], [-1, -1, -1, -1, -1, -1]],
        [[1, 0.7, 0.2, 0.2, 0.3, 0.3], [-1, -1, -1, -1, -1, -1], [-1, -1, -1, -1, -1, -1]],
    ],
    np.float32,
)


def test_identical_and_reordered_rows_agree():
    assert compare_detections(ROWS, ROWS.copy()).ok
    swapped = ROWS.copy()
    swapped[0, [0, 1]] = swapped[0, [1, 0]]
    result = compare_detections(ROWS, swapped)
    assert result.ok and result.max_box_error == 0.0


def test_small_noise_agrees_and_reports_the_error():
    noisy = ROWS.copy()
    noisy[0, 0, 2] += 5e-4
    noisy[1, 0, 1] += 5e-5
    result = compare_detections(ROWS, noisy)
    assert result.ok
    assert np.isclose(result.max_box_error, 5e-4, rtol=1e-2) and np.isclose(
        result.max_score_error, 5e-5, rtol=1e-2
    )


def test_each_kind_of_difference_is_caught():
    for image, row, column, value in [(0, 0, 0, 1.0), (0, 1, 1, 0.51), (1, 0, 4, 0.302), (1, 1, 0, 0.0)]:
        other = ROWS.copy()
        other[image, row, column] = value  # class, score, box, an extra row
        if column == 0 and row == 1:
            other[image, row, 1:] = [0.3, 0.0, 0.0, 0.1, 0.1]
        result = compare_detections(ROWS, other)
        assert result.mismatched_images == [image], (image, row, column)
