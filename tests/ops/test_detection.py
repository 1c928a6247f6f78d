import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from multibox.ops import box_iou, decode_boxes, multibox_detection
from multibox.ops.detection import _top_rows
from tests.golden import golden_files, load_golden
from tests.ops.reference import per_class_detection


@pytest.mark.parametrize("path", golden_files("detection"), ids=lambda p: p.stem)
def test_matches_mxnet_golden(path):
    arrays, p = load_golden(path)
    out = multibox_detection(
        torch.from_numpy(arrays["cls_prob"]),
        torch.from_numpy(arrays["loc_pred"]),
        torch.from_numpy(arrays["anchors"]),
        **p,
    ).numpy()
    expected = arrays["out"]
    assert out.shape == expected.shape
    for got, want in zip(out, expected, strict=True):
        kept, kept_want = got[got[:, 0] >= 0], want[want[:, 0] >= 0]
        assert np.array_equal(kept[:, 0], kept_want[:, 0])  # same classes in the same order
        np.testing.assert_allclose(kept, kept_want, rtol=0, atol=1e-6)
    # Suppressed rows and top-k leftovers too: the whole tensor agrees, class ids (-1 included) exactly; the
    # measured difference is at most 1.2e-7 (one float32 rounding of the decoded corners).
    np.testing.assert_array_equal(out[..., 0], expected[..., 0])
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-6, strict=True)


def _inputs(seed, n=2, num_classes=4, num_anchors=30, background_boost=0.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(num_anchors, 2, generator=g) * 0.8
    anchors = torch.cat([xy, xy + 0.05 + torch.rand(num_anchors, 2, generator=g) * 0.3], dim=1)
    logits = torch.randn(n, num_classes + 1, num_anchors, generator=g) * 2
    logits[:, 0] += background_boost
    loc = torch.randn(n, num_anchors * 4, generator=g) * 0.5
    return torch.softmax(logits, dim=1), loc, anchors


def test_background_is_skipped_even_when_it_dominates():
    prob = torch.tensor([[[0.95], [0.03], [0.02]]])
    anchors = torch.tensor([[0.1, 0.1, 0.3, 0.3]])
    out = multibox_detection(prob, torch.zeros(1, 4), anchors)
    np.testing.assert_allclose(out[0, 0].numpy(), [0, 0.03, 0.1, 0.1, 0.3, 0.3], atol=1e-6)
    # background_id is declared but ignored, as in the original
    assert torch.equal(multibox_detection(prob, torch.zeros(1, 4), anchors, background_id=1), out)


def test_threshold_sort_and_suppression_hand_computed():
    anchors = torch.tensor(
        [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.45], [0.5, 0.5, 1.0, 1.0], [0.6, 0.6, 0.9, 0.9]]
    )
    prob = torch.tensor([[[0.2, 0.1, 0.5, 0.995], [0.7, 0.8, 0.1, 0.004], [0.1, 0.1, 0.4, 0.001]]])
    out = multibox_detection(prob, torch.zeros(1, 16), anchors, nms_threshold=0.5)
    # anchor 3 below threshold (best fg .004 < .01): not valid; sorted by score: a1 (.8), a0 (.7), a2 (.4)
    # a0 vs a1: IoU .9 -> a0 suppressed (same class 0), keeps score and box with id -1.
    expected = [
        [0, 0.8, 0, 0, 0.5, 0.45],
        [-1, 0.7, 0, 0, 0.5, 0.5],
        [1, 0.4, 0.5, 0.5, 1, 1],
        [-1, -1, -1, -1, -1, -1],
    ]
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-6)
    # nms_threshold outside (0, 1]: valid rows compacted in anchor order, no sorting, no suppression
    unsorted = multibox_detection(prob, torch.zeros(1, 16), anchors, nms_threshold=0)
    np.testing.assert_allclose(unsorted[0, :3, :2].numpy(), [[0, 0.7], [0, 0.8], [1, 0.4]], atol=1e-6)


def test_force_suppress_crosses_classes():
    anchors = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 0.45]])
    prob = torch.tensor([[[0.1, 0.1], [0.8, 0.1], [0.1, 0.8]]])
    kept = multibox_detection(prob, torch.zeros(1, 8), anchors)[0, :, 0].tolist()
    assert kept == [0, 1]
    forced = multibox_detection(prob, torch.zeros(1, 8), anchors, force_suppress=True)[0, :, 0].tolist()
    assert forced == [0, -1]


def test_topk_leftovers_keep_presort_rows():
    prob, loc, anchors = _inputs(3, n=1, num_anchors=12)
    full = multibox_detection(prob, loc, anchors, nms_threshold=0)  # compacted, unsorted
    top = multibox_detection(prob, loc, anchors, nms_topk=3)
    valid = int((full[0, :, 0] >= 0).sum())
    assert valid > 3
    assert bool((top[0, 3:valid, 0] == -1).all())
    torch.testing.assert_close(top[0, 3:valid, 1:], full[0, 3:valid, 1:])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from([0.3, 0.45, 0.7]),
    st.sampled_from([-1, 5, 25]),
    st.booleans(),
)
def test_mxnet_mode_properties(seed, force_suppress, nms_threshold, nms_topk, clip):
    prob, loc, anchors = _inputs(seed, num_anchors=40)
    out = multibox_detection(
        prob,
        loc,
        anchors,
        clip=clip,
        nms_threshold=nms_threshold,
        force_suppress=force_suppress,
        nms_topk=nms_topk,
    )
    assert out.shape == (2, 40, 6)
    for rows in out:
        kept = rows[rows[:, 0] >= 0]
        assert bool((kept[1:, 1] <= kept[:-1, 1]).all()), "kept rows sorted by score"
        iou = box_iou(kept[:, 2:], kept[:, 2:])
        same = (
            torch.ones_like(iou, dtype=torch.bool) if force_suppress else kept[:, None, 0] == kept[None, :, 0]
        )
        clash = (iou >= nms_threshold) & same & ~torch.eye(len(kept), dtype=torch.bool)
        assert not bool(clash.any())
        if clip:
            assert bool((kept[:, 2:] >= 0).all() and (kept[:, 2:] <= 1).all())


@settings(max_examples=30, deadline=None)
@given(
    st.integers(0, 10_000),
    st.booleans(),
    st.sampled_from([-1, 4, 15]),
    st.sampled_from([3, 10, 60]),
    st.sampled_from([0.0, 1.5]),
)
def test_per_class_matches_reference(seed, force_suppress, nms_topk, max_detections, background_boost):
    prob, loc, anchors = _inputs(seed, num_anchors=25, background_boost=background_boost)
    out = multibox_detection(
        prob,
        loc,
        anchors,
        per_class=True,
        nms_threshold=0.45,
        threshold=0.05,
        nms_topk=nms_topk,
        force_suppress=force_suppress,
        max_detections=max_detections,
    )
    assert out.shape == (2, max_detections, 6)
    boxes = decode_boxes(anchors, loc.view(2, -1, 4)).clamp(0, 1)
    for i in range(2):
        expected = per_class_detection(
            prob[i].numpy(), boxes[i].numpy(), 0.05, 0.45, nms_topk, max_detections, force_suppress
        )
        got = out[i][out[i, :, 0] >= 0]
        assert len(got) == len(expected)
        assert got[:, 0].tolist() == [float(c) for c, _, _ in expected]
        np.testing.assert_allclose(got[:, 1].numpy(), [s for _, s, _ in expected], rtol=1e-6)
        np.testing.assert_allclose(
            got[:, 2:].numpy(), boxes[i, [a for _, _, a in expected]].numpy(), atol=1e-6
        )
        assert bool((out[i, len(got) :] == -1).all())


def test_per_class_gives_several_classes_per_anchor():
    anchors = torch.tensor([[0.1, 0.1, 0.4, 0.4]])
    prob = torch.tensor([[[0.1], [0.5], [0.4]]])
    out = multibox_detection(prob, torch.zeros(1, 4), anchors, per_class=True, max_detections=3)
    np.testing.assert_allclose(out[0, :, :2].numpy(), [[0, 0.5], [1, 0.4], [-1, -1]], atol=1e-6)
    single = multibox_detection(prob, torch.zeros(1, 4), anchors)
    assert int((single[0, :, 0] >= 0).sum()) == 1


def test_per_class_honours_background_id():
    anchors = torch.tensor([[0.1, 0.1, 0.4, 0.4]])
    prob = torch.tensor([[[0.3], [0.6], [0.1]]])
    out = multibox_detection(
        prob, torch.zeros(1, 4), anchors, per_class=True, background_id=1, max_detections=2
    )
    np.testing.assert_allclose(out[0, :, :2].numpy(), [[0, 0.3], [1, 0.1]], atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_inputs(dtype):
    prob, loc, anchors = _inputs(5)
    prob, loc, anchors = prob.to(dtype), loc.to(dtype), anchors.to(dtype)
    reference = multibox_detection(prob.float(), loc.float(), anchors.float(), nms_topk=10)
    torch.testing.assert_close(multibox_detection(prob, loc, anchors, nms_topk=10), reference)


def test_loc_pred_layouts_agree():
    prob, loc, anchors = _inputs(9)
    torch.testing.assert_close(
        multibox_detection(prob, loc, anchors),
        multibox_detection(prob, loc.view(2, -1, 4), anchors.unsqueeze(0)),
    )


def test_bad_shapes_raise():
    prob, loc, anchors = _inputs(1)
    with pytest.raises(ValueError, match="anchors"):
        multibox_detection(prob, loc, anchors[:-1])
    with pytest.raises(ValueError, match="loc_pred"):
        multibox_detection(prob, loc[:, :-4], anchors)
    with pytest.raises(ValueError, match="rank"):
        multibox_detection(prob[0], loc, anchors)
    with pytest.raises(ValueError, match="background"):
        multibox_detection(prob[:, :1], loc, anchors)


@pytest.mark.parametrize(
    "scores, topk, expected_order",
    [
        ([0.5, 0.9, 0.5, 0.2, 0.5], 4, [1, 0, 2, 4]),  # ties inside the top-k keep anchor order
        ([0.5, 0.5, 0.5, 0.5, 0.5, 0.5], 3, [0, 1, 2]),  # ties straddling the k-th place
        ([0.5, 0.9, 0.5, 0.1, 0.5, 0.7], 3, [1, 5, 0]),  # the same, after higher scores further on
        ([0.3, 0.5, 0.5, 0.9], -1, [3, 1, 2, 0]),
    ],
)
def test_sort_is_stable_with_tied_scores(scores, topk, expected_order):
    num_anchors = len(scores)
    # anchors far apart: nothing is suppressed
    anchors = torch.tensor([[0.15 * i, 0.0, 0.15 * i + 0.1, 0.1] for i in range(num_anchors)])
    prob = torch.tensor([[[1 - s for s in scores], scores]])
    out = multibox_detection(prob, torch.zeros(1, 4 * num_anchors), anchors, nms_topk=topk)
    k = len(expected_order)
    np.testing.assert_allclose(out[0, :k, 2].numpy(), anchors[expected_order, 0].numpy(), atol=1e-6)
    assert bool((out[0, :k, 0] == 0).all())
    # leftovers past the top-k: pre-sort (anchor-order) rows with id -1
    np.testing.assert_allclose(out[0, k:, 2].numpy(), anchors[k:, 0].numpy(), atol=1e-6)
    assert bool((out[0, k:, 0] == -1).all())


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 30), st.integers(1, 4), st.integers(1, 6))
def test_top_rows_equal_the_stable_sort(seed, width, images, levels):
    """Few distinct values give ties at and around the k-th place; both code paths are exercised."""
    generator = torch.Generator().manual_seed(seed)
    key = torch.randint(0, levels, (images, width), generator=generator).float()
    k = int(torch.randint(1, width + 1, (1,), generator=generator))
    ascending, permutation = _top_rows(key, k)
    expected = torch.sort(key, dim=1, descending=True, stable=True).indices[:, :k]
    assert torch.equal(torch.gather(ascending, 1, permutation), expected)
    assert bool((ascending[:, 1:] > ascending[:, :-1]).all())
