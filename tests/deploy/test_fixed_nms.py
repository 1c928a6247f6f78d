"""The fixed-shape NMS used in exported files: plain-loop greedy NMS and ONNX Runtime's operator as truth."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.deploy.fixed_nms import greedy_nms_sorted, onnx_non_max_suppression


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _loop_nms(boxes: np.ndarray, active: np.ndarray, groups: np.ndarray, threshold: float) -> np.ndarray:
    keep = np.zeros(len(boxes), bool)
    for i in range(len(boxes)):
        if not active[i]:
            continue
        keep[i] = not any(
            keep[j] and groups[j] == groups[i] and _iou(boxes[j], boxes[i]) > threshold for j in range(i)
        )
    return keep


def _random_boxes(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    corner = rng.uniform(0, 0.8, (*shape, 2))
    size = rng.uniform(0.02, 0.4, (*shape, 2))
    return np.concatenate([corner, corner + size], -1).astype(np.float32)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    batch=st.integers(1, 3),
    num=st.integers(1, 40),
    num_groups=st.integers(1, 3),
    threshold=st.sampled_from([0.1, 0.3, 0.45, 0.7]),
)
def test_fixed_point_equals_the_greedy_loop(seed, batch, num, num_groups, threshold):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, (batch, num))
    active = rng.random((batch, num)) < 0.8
    groups = rng.integers(0, num_groups, (batch, num))
    keep = greedy_nms_sorted(
        torch.from_numpy(boxes), torch.from_numpy(active), torch.from_numpy(groups), threshold
    )
    for b in range(batch):
        np.testing.assert_array_equal(keep[b].numpy(), _loop_nms(boxes[b], active[b], groups[b], threshold))


def test_long_suppression_chain_settles():
    # Each box overlaps only its neighbours: greedy keeps every other one (0, 2, 4, ...).
    x = torch.arange(12, dtype=torch.float32) * 0.5
    boxes = torch.stack([x, torch.zeros(12), x + 1, torch.ones(12)], -1).unsqueeze(0)
    keep = greedy_nms_sorted(
        boxes, torch.ones(1, 12, dtype=torch.bool), torch.zeros(1, 12, dtype=torch.long), 0.3
    )
    assert keep[0].tolist() == [i % 2 == 0 for i in range(12)]


def _onnx_runtime_nms(boxes: np.ndarray, scores: np.ndarray, iou: float, score: float) -> np.ndarray:
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node(
                "NonMaxSuppression",
                ["boxes", "scores", "max_out", "iou", "score"],
                ["selected"],
                center_point_box=0,
            )
        ],
        "nms",
        [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, list(boxes.shape)),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, list(scores.shape)),
        ],
        [helper.make_tensor_value_info("selected", TensorProto.INT64, None)],
        initializer=[
            helper.make_tensor("max_out", TensorProto.INT64, [1], [10**6]),
            helper.make_tensor("iou", TensorProto.FLOAT, [1], [iou]),
            helper.make_tensor("score", TensorProto.FLOAT, [1], [score]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"boxes": boxes, "scores": scores})[0]


@pytest.mark.parametrize("seed", range(5))
def test_torch_version_of_the_onnx_operator_matches_onnx_runtime(seed):
    rng = np.random.default_rng(seed)
    boxes = _random_boxes(rng, (2, 60))
    scores = rng.random((2, 3, 60)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.3] = -1.0  # masked candidates
    expected = _onnx_runtime_nms(boxes, scores, 0.45, -0.5)
    got = onnx_non_max_suppression(torch.from_numpy(boxes), torch.from_numpy(scores), 0.45, -0.5).numpy()
    as_set = lambda rows: sorted(map(tuple, rows.tolist()))  # noqa: E731
    assert as_set(got) == as_set(expected)
