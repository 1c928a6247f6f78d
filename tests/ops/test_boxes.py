import math

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.ops import box_iou, decode_boxes, encode_boxes
from multibox.ops.boxes import coordinate_planes

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


def _decode_by_formula(anchor, offset, variances):
    """One box decoded with scalar Python arithmetic (the formula, written independently)."""
    (a1, b1, a2, b2), (dx, dy, dw, dh), (vx, vy, vw, vh) = anchor, offset, variances
    aw, ah = a2 - a1, b2 - b1
    cx, cy = dx * vx * aw + (a1 + a2) / 2, dy * vy * ah + (b1 + b2) / 2
    w, h = math.exp(dw * vw) * aw, math.exp(dh * vh) * ah
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def test_decode_writes_into_columns_of_a_wider_row():
    anchors = torch.tensor([[0.1, 0.2, 0.5, 0.4], [0.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    offsets = torch.tensor([[0.5, -1.0, 0.3, -0.2], [0.0, 0.0, 0.0, 0.0]], dtype=torch.float64)
    rows = torch.full((2, 6), -1.0, dtype=torch.float64)
    returned = decode_boxes(anchors, offsets, (0.1, 0.1, 0.2, 0.2), out=rows[:, 2:])
    expected = [
        _decode_by_formula(a, o, (0.1, 0.1, 0.2, 0.2))
        for a, o in zip(anchors.tolist(), offsets.tolist(), strict=True)
    ]
    np.testing.assert_allclose(rows[:, 2:].numpy(), expected, rtol=1e-12)
    assert returned.data_ptr() == rows[:, 2:].data_ptr()
    assert rows[:, :2].eq(-1).all()  # the other columns untouched


def test_decode_is_differentiable_without_out():
    anchor = torch.tensor([[0.1, 0.2, 0.5, 0.4]], dtype=torch.float64)
    offset = torch.tensor([[0.5, -1.0, 0.3, -0.2]], dtype=torch.float64, requires_grad=True)
    decode_boxes(anchor, offset, (0.1, 0.1, 0.2, 0.2)).sum().backward()
    # d(sum of corners)/d offsets: x1 + x2 = 2 cx, so 2 * vx * aw for dx; the half sizes cancel for dw, dh
    np.testing.assert_allclose(offset.grad.numpy(), [[2 * 0.1 * 0.4, 2 * 0.1 * 0.2, 0.0, 0.0]], atol=1e-12)


def test_coordinate_planes_are_the_columns():
    rows = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    planes = coordinate_planes(rows)
    assert planes.shape == (4, 2, 3) and planes.is_contiguous()
    for i in range(4):
        assert torch.equal(planes[i], rows[..., i])
    wide = torch.randn(50, 6)[:, 1:5]  # strided columns of a wider row, as the detection's output holds them
    assert torch.equal(coordinate_planes(wide), wide.t())
    assert coordinate_planes(torch.empty(0, 4)).shape == (4, 0)
