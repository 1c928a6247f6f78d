import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.ops import box_iou, decode_boxes, encode_boxes

coordinate = st.floats(0.0, 1.0, allow_nan=False, width=32)
extent = st.floats(0.015625, 1.0, allow_nan=False, width=32)


@st.composite
def boxes(draw, min_size=1, max_size=12):
    n = draw(st.integers(min_size, max_size))
    rows = [
        [x, y, x + w, y + h]
        for x, y, w, h in ((draw(coordinate), draw(coordinate), draw(extent), draw(extent)) for _ in range(n))
    ]
    return torch.tensor(rows, dtype=torch.float32)


def test_iou_hand_computed():
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [5.0, 5.0, 6.0, 6.0], [0.0, 0.0, 2.0, 2.0]])
    expected = [[1 / 7, 0.0, 1.0], [0.0, 0.0, 0.25]]
    np.testing.assert_allclose(box_iou(a, b).numpy(), expected, rtol=1e-6)


def test_iou_of_zero_area_boxes_is_zero():
    a = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    assert box_iou(a, a).item() == 0.0


@settings(max_examples=60, deadline=None)
@given(boxes(), boxes())
def test_iou_in_unit_interval_and_symmetric(a, b):
    iou = box_iou(a, b)
    assert iou.shape == (len(a), len(b))
    assert bool((iou >= 0).all()) and bool((iou <= 1 + 1e-6).all())
    torch.testing.assert_close(iou, box_iou(b, a).T)
    np.testing.assert_allclose(torch.diagonal(box_iou(a, a)).numpy(), 1.0, rtol=1e-5)


@settings(max_examples=60, deadline=None)
@given(boxes(), boxes(), st.sampled_from([(0.1, 0.1, 0.2, 0.2), (1.0, 1.0, 1.0, 1.0), (0.5, 0.2, 0.3, 0.7)]))
def test_encode_decode_round_trip(anchors, gt, variances):
    n = min(len(anchors), len(gt))
    anchors, gt = anchors[:n].double(), gt[:n].double()
    offsets = encode_boxes(anchors, gt, variances)
    assert torch.isfinite(offsets).all()
    torch.testing.assert_close(decode_boxes(anchors, offsets, variances), gt, atol=1e-9, rtol=1e-9)


def test_encode_hand_computed():
    anchor = torch.tensor([0.2, 0.2, 0.6, 0.4])
    box = torch.tensor([0.3, 0.1, 0.5, 0.5])
    expected = [
        (0.4 - 0.4) / 0.4 / 0.1,
        (0.3 - 0.3) / 0.2 / 0.1,
        math.log(0.2 / 0.4) / 0.2,
        math.log(0.4 / 0.2) / 0.2,
    ]
    np.testing.assert_allclose(encode_boxes(anchor, box).numpy(), expected, atol=1e-6)
