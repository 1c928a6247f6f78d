"""The detections' one JSON form, shared by ``multibox detect`` and ``multibox serve``."""

from __future__ import annotations

import json

import numpy as np

from multibox.inference import detections_to_json


def test_detections_to_json_rounds_and_names_each_row():
    detections = {
        "boxes": np.array([[10.123, 20.456, 30.789, 40.001], [0.0, 1.5, 2.25, 3.125]], np.float32),
        "scores": np.array([0.987654, 0.5], np.float32),
        "labels": np.array([2, 0], np.int64),
    }
    rows = detections_to_json(detections, ["cat", "dog", "bird"])
    assert rows == [
        {"box": [10.12, 20.46, 30.79, 40.0], "score": 0.9877, "class_id": 2, "class_name": "bird"},
        {"box": [0.0, 1.5, 2.25, 3.12], "score": 0.5, "class_id": 0, "class_name": "cat"},
    ]
    assert json.loads(json.dumps(rows)) == rows  # plain Python numbers only


def test_no_detections_is_an_empty_list():
    empty = {
        "boxes": np.zeros((0, 4), np.float32),
        "scores": np.zeros(0, np.float32),
        "labels": np.zeros(0, int),
    }
    assert detections_to_json(empty, ["cat"]) == []
