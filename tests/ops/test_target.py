import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.ops import multibox_target
from multibox.ops.target import _background_probability
from tests.golden import golden_files, load_golden


@pytest.mark.parametrize("path", golden_files("target"), ids=lambda p: p.stem)
def test_matches_mxnet_golden(path):
    arrays, p = load_golden(path)
    loc_target, loc_mask, cls_target = multibox_target(
        torch.from_numpy(arrays["anchors"]),
        torch.from_numpy(arrays["labels"]),
        torch.from_numpy(arrays["cls_preds"]),
        overlap_threshold=p["overlap_threshold"],
        negative_mining_ratio=p["negative_mining_ratio"],
        negative_mining_thresh=p["negative_mining_thresh"],
        variances=p["variances"],
    )
    # The MXNet CPU kernel and this implementation agree bit for bit on every case: no anchor may differ.
    np.testing.assert_array_equal(cls_target.numpy(), arrays["cls_target"], strict=True)
    np.testing.assert_array_equal(loc_mask.numpy(), arrays["loc_mask"], strict=True)
    assert (arrays["cls_target"] > 0).any(), "a golden case without positives tests no encoding"
    # loc_target everywhere: the encoded offsets of positives, and the zeros the original writes elsewhere.
    np.testing.assert_allclose(loc_target.numpy(), arrays["loc_target"], rtol=1e-6, atol=1e-6, strict=True)
    assert not loc_target.numpy()[arrays["loc_mask"] == 0].any()


def _labels(*rows, pad_to=None, width=5):
    rows = [list(r) + [0.0] * (width - len(r)) for r in rows]
    pad = (pad_to or len(rows)) - len(rows)
    return torch.tensor([rows + [[-1.0] * width] * pad], dtype=torch.float32)


def test_two_anchors_one_box_hand_computed():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    labels = _labels([2, 0.1, 0.1, 0.5, 0.6], pad_to=3)
    cls_preds = torch.zeros(1, 4, 2)
    loc_target, loc_mask, cls_target = multibox_target(anchors, labels, cls_preds)
    # Anchor 0 overlaps (IoU 0.4/(0.25+0.2-0.16)... ) -> bipartite match; anchor 1 does not overlap.
    assert cls_target.tolist() == [[3.0, 0.0]]  # no mining: every non-positive anchor is a negative
    assert loc_mask.tolist() == [[1, 1, 1, 1, 0, 0, 0, 0]]
    # encode: anchor centre (.25,.25) size .5; box centre (.3,.35) size (.4,.5); variances .1/.2
    expected = [(0.3 - 0.25) / 0.5 / 0.1, (0.35 - 0.25) / 0.5 / 0.1, math.log(0.4 / 0.5) / 0.2, 0.0]
    np.testing.assert_allclose(loc_target[0, :4].numpy(), expected, atol=1e-5)
    assert loc_target[0, 4:].abs().sum() == 0


def test_tie_goes_to_the_first_anchor():
    # Two identical anchors: the greedy bipartite step takes the lower index; threshold matching then also
    # makes the second one positive when the IoU exceeds the threshold, but not when it does not.
    anchors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.4, 0.4]])
    labels = _labels([0, 0.0, 0.0, 0.5, 0.5])  # IoU = .16 / .25 = .64
    _, _, cls_target = multibox_target(anchors, labels, torch.zeros(1, 2, 2), overlap_threshold=0.7)
    assert cls_target.tolist() == [[1.0, 0.0]]
    _, _, cls_target = multibox_target(anchors, labels, torch.zeros(1, 2, 2), overlap_threshold=0.6)
    assert cls_target.tolist() == [[1.0, 1.0]]


def test_bipartite_gives_each_ground_truth_its_own_anchor():
    # Both boxes prefer anchor 0; the greedy match takes the best pair first, the other box gets anchor 1.
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.6, 0.6]])
    labels = _labels([0, 0.0, 0.0, 0.5, 0.5], [1, 0.0, 0.0, 0.45, 0.45])
    _, _, cls_target = multibox_target(anchors, labels, torch.zeros(1, 3, 2), overlap_threshold=0.99)
    assert cls_target.tolist() == [[1.0, 2.0]]


def test_hard_negative_mining_picks_least_background_like():
    anchors = torch.tensor(
        [[0.0, 0.0, 0.2, 0.2]] + [[0.5 + i * 0.1, 0.5, 0.55 + i * 0.1, 0.55] for i in range(4)]
    )
    labels = _labels([0, 0.0, 0.0, 0.2, 0.2])
    logits = torch.zeros(1, 2, 5)
    logits[0, 0] = torch.tensor([0.0, 3.0, -1.0, 2.0, -1.0])  # background logit; low = hard negative
    _, _, cls_target = multibox_target(anchors, labels, logits, negative_mining_ratio=2)
    # one positive -> two negatives: anchors 2 and 4 tie on background prob, stable order keeps both.
    assert cls_target.tolist() == [[1.0, -1.0, 0.0, -1.0, 0.0]]
    _, _, cls_target = multibox_target(anchors, labels, logits, negative_mining_ratio=1)
    assert cls_target.tolist() == [[1.0, -1.0, 0.0, -1.0, -1.0]]


def test_negative_mining_threshold_excludes_overlapping_anchors():
    anchors = torch.tensor([[0.0, 0.0, 0.4, 0.4], [0.0, 0.0, 0.5, 0.4], [0.6, 0.6, 1.0, 1.0]])
    labels = _labels([0, 0.0, 0.0, 0.4, 0.4])
    logits = torch.zeros(1, 2, 3)
    logits[0, 0, 1] = -5.0  # the hardest anchor, but its IoU .8 is above negative_mining_thresh
    _, _, cls_target = multibox_target(
        anchors, labels, logits, overlap_threshold=0.9, negative_mining_ratio=3, negative_mining_thresh=0.5
    )
    # anchor 1 (IoU .8) is neither positive nor a negative candidate; anchor 2 is the only negative.
    assert cls_target.tolist() == [[1.0, -1.0, 0.0]]


def test_image_without_ground_truth_is_ignored_unless_minimum_negatives():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0], [0.2, 0.2, 0.6, 0.6]])
    labels = torch.full((1, 2, 5), -1.0)
    logits = torch.zeros(1, 3, 3)
    logits[0, 0] = torch.tensor([1.0, -2.0, 0.0])
    for ratio in (-1.0, 3.0):
        loc_target, loc_mask, cls_target = multibox_target(
            anchors, labels, logits, negative_mining_ratio=ratio
        )
        assert cls_target.tolist() == [[-1.0, -1.0, -1.0]]
        assert loc_mask.sum() == 0 and loc_target.abs().sum() == 0
    _, _, cls_target = multibox_target(
        anchors, labels, logits, negative_mining_ratio=3, minimum_negative_samples=2
    )
    assert cls_target.tolist() == [[-1.0, 0.0, 0.0]]


def test_minimum_negative_samples_raises_the_negative_count():
    anchors = torch.tensor(
        [[0.0, 0.0, 0.3, 0.3]] + [[0.5, 0.5 + 0.01 * i, 0.6, 0.6 + 0.01 * i] for i in range(6)]
    )
    labels = _labels([0, 0.0, 0.0, 0.3, 0.3])
    _, _, default = multibox_target(anchors, labels, torch.zeros(1, 2, 7), negative_mining_ratio=2)
    _, _, more = multibox_target(
        anchors, labels, torch.zeros(1, 2, 7), negative_mining_ratio=2, minimum_negative_samples=5
    )
    assert (default == 0).sum() == 2 and (more == 0).sum() == 5


def test_leading_rows_only_like_the_cpu_kernel():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])
    labels = torch.tensor([[[0, 0.0, 0.0, 0.5, 0.5], [-1, -1, -1, -1, -1], [1, 0.5, 0.5, 1.0, 1.0]]])
    _, _, cls_target = multibox_target(anchors, labels, torch.zeros(1, 3, 2))
    assert cls_target.tolist() == [[1.0, 0.0]]  # the row after the first padding row is not ground truth


def test_degenerate_ground_truth_gives_finite_targets():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75]])
    labels = _labels([0, 0.3, 0.3, 0.3, 0.6], [1, 0.2, 0.2, 0.2, 0.2])  # zero width, zero area
    for threshold in (0.5, 0.0, -1.0):
        loc_target, loc_mask, cls_target = multibox_target(
            anchors, labels, torch.zeros(1, 3, 2), overlap_threshold=threshold, negative_mining_ratio=3
        )
        assert torch.isfinite(loc_target).all() and torch.isfinite(cls_target).all()


def test_degenerate_anchor_gives_finite_targets():
    anchors = torch.tensor([[0.2, 0.2, 0.2, 0.2], [0.0, 0.0, 0.5, 0.5]])
    loc_target, _, _ = multibox_target(anchors, _labels([0, 0.1, 0.1, 0.4, 0.4]), torch.zeros(1, 2, 2))
    assert torch.isfinite(loc_target).all()


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_inputs_are_computed_in_float32(dtype):
    arrays, p = load_golden(golden_files("target")[6])
    # Inputs representable in ``dtype``: the result must equal the float32 computation on the same values.
    args = [torch.from_numpy(arrays[k]).to(dtype) for k in ("anchors", "labels", "cls_preds")]
    kwargs = {
        k: p[k] for k in ("overlap_threshold", "negative_mining_ratio", "negative_mining_thresh", "variances")
    }
    reference = multibox_target(*[a.float() for a in args], **kwargs)
    result = multibox_target(*args, **kwargs)
    assert all(r.dtype == dtype for r in result)
    assert torch.equal(result[1].float(), reference[1]) and torch.equal(result[2].float(), reference[2])
    torch.testing.assert_close(result[0].float(), reference[0], atol=0.02, rtol=0.01)


def test_batch_items_are_independent():
    arrays, p = load_golden(golden_files("target")[6])
    anchors, labels, logits = (torch.from_numpy(arrays[k]) for k in ("anchors", "labels", "cls_preds"))
    kwargs = {"negative_mining_ratio": 3.0}
    whole = multibox_target(anchors, labels, logits, **kwargs)
    for i in range(labels.shape[0]):
        single = multibox_target(anchors, labels[i : i + 1], logits[i : i + 1], **kwargs)
        for w, s in zip(whole, single, strict=True):
            assert torch.equal(w[i : i + 1], s)


@pytest.mark.parametrize(
    "labels, message",
    [
        (torch.tensor([[[0, 0.5, 0.1, 0.2, 0.4]]]), "x2 < x1"),
        (torch.tensor([[[0, 0.1, 0.5, 0.2, 0.4]]]), "y2 < y1"),
        (torch.tensor([[[0, 0.1, float("nan"), 0.2, 0.4]]]), "NaN"),
        (torch.tensor([[[0, 0.1, 0.1, float("inf"), 0.4]]]), "NaN or Inf"),
        (torch.tensor([[[3, 0.1, 0.1, 0.2, 0.4]]]), "class id 3"),
        (torch.tensor([[[0.5, 0.1, 0.1, 0.2, 0.4]]]), "integers"),
        (torch.tensor([[0, 0.1, 0.1, 0.2, 0.4]]), "rank 3"),
        (torch.tensor([[[0, 0.1, 0.1, 0.2]]]), "rows must be"),
        (torch.tensor([[[-1, 0.1, 0.1, 0.2, 0.4]]]), "all -1"),
    ],
)
def test_bad_labels_raise(labels, message):
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    with pytest.raises(ValueError, match=message):
        multibox_target(anchors, labels, torch.zeros(1, 4, 1))


def test_bad_shapes_raise():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5]])
    labels = _labels([0, 0.1, 0.1, 0.2, 0.4])
    with pytest.raises(ValueError, match="anchors"):
        multibox_target(anchors, labels, torch.zeros(1, 4, 2))
    with pytest.raises(ValueError, match="batch"):
        multibox_target(anchors, labels, torch.zeros(2, 4, 1))
    with pytest.raises(ValueError, match="rank"):
        multibox_target(anchors, labels, torch.zeros(4, 1))
    with pytest.raises(ValueError, match="batch size 1"):
        multibox_target(anchors.expand(2, 1, 4), labels, torch.zeros(1, 4, 1))


def test_matching_equals_a_plain_loop_for_mixed_ground_truth_counts():
    # One batch mixing images without ground truth, with a few boxes and with more than 255 (the blocks of
    # images sorted by count, and the first-maximum search past uint8 weights), against the plain loop.
    from tests.ops.reference import match_anchors

    rng = np.random.default_rng(7)
    centres = rng.uniform(0.1, 0.9, (48, 2))
    sizes = rng.uniform(0.05, 0.5, (48, 2))
    anchors = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1).astype(np.float32)
    counts = [0, 3, 260, 1, 0, 17]
    labels = np.full((len(counts), max(counts), 5), -1.0, np.float32)
    for i, count in enumerate(counts):
        corner = rng.uniform(0.0, 0.7, (count, 2))
        extent = rng.uniform(0.02, 0.3, (count, 2))
        labels[i, :count, 0] = rng.integers(0, 5, count)
        labels[i, :count, 1:3], labels[i, :count, 3:5] = corner, corner + extent
    _, loc_mask, cls_target = multibox_target(
        torch.from_numpy(anchors), torch.from_numpy(labels), torch.zeros(len(counts), 6, len(anchors))
    )
    for i, count in enumerate(counts):
        matched = match_anchors(anchors, labels[i, :count, 1:5], 0.5)
        expected = [labels[i, g, 0] + 1 if g >= 0 else (0.0 if count else -1.0) for g in matched]
        assert cls_target[i].tolist() == expected, f"image {i} with {count} boxes"
        assert loc_mask[i].view(-1, 4)[:, 0].tolist() == [float(g >= 0) for g in matched]


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(2, 22),
    st.integers(1, 50),
    st.floats(0.1, 30.0),
    st.integers(0, 2**31 - 1),
    st.sampled_from([torch.float32, torch.float16]),
)
def test_background_probability_is_the_softmax_of_class_zero(n, num_rows, num_anchors, spread, seed, dtype):
    """The mining score (computed through exp2) agrees with a float64 softmax to float32 precision."""
    generator = torch.Generator().manual_seed(seed)
    logits = (torch.randn(n, num_rows, num_anchors, generator=generator) * spread).to(dtype)
    expected = torch.softmax(logits.double(), dim=1)[:, 0]
    got = _background_probability(logits)
    assert got.dtype == torch.float32 and got.shape == (n, num_anchors)
    # float32 rounds each exponent's argument to ~1e-7 of the logits' magnitude: that much relative error, and
    # softmax values below float32's range flush to 0
    rtol = 2e-6 + 1e-6 * float(logits.float().abs().max())
    torch.testing.assert_close(got.double(), expected, rtol=rtol, atol=1e-37)
