"""Anchor coverage and the k-means anchor fit (multibox/model/anchor_fit.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from multibox.errors import ConfigError
from multibox.model import build_ssd
from multibox.model.anchor_fit import (
    anchor_coverage,
    best_anchor_iou,
    bucket_edges_px,
    fit_anchors,
    fit_network_anchors,
    fit_ratios,
    fit_score,
    kmeans_wh,
    network_anchors,
    rescale_sizes,
    wh_iou,
)
from multibox.ops.boxes import box_iou

# two anchors, the image's top-left and bottom-right quarters (normalised corners)
ANCHORS = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.5, 0.5, 1.0, 1.0]])


def _hand_case():
    """Three boxes, by hand (normalised to their own image):

    1. [0, 0, 100, 50] in a 200 w x 100 h image -> [0, 0, .5, .5]: anchor 1 exactly, IoU 1; side .5 (large).
    2. [200, 200, 400, 350] in a 400 x 400 image -> [.5, .5, 1, .875]: inside anchor 2, inter = .5 * .375
       = .1875, union = .25 -> IoU .75; side sqrt(.1875) = .433 (large).
    3. [0, 0, 8, 4] in the 200 x 100 image -> [0, 0, .04, .04]: inside anchor 1, IoU .0016 / .25 = .0064;
       side .04 < .05 (small).
    Covered at 0.5: boxes 1 and 2 -> 2/3; mean best IoU (1 + .75 + .0064) / 3.
    """
    boxes = np.array([[0, 0, 100, 50], [200, 200, 400, 350], [0, 0, 8, 4]], np.float32)
    labels = np.array([0, 1, 0])
    sizes = np.array([[100, 200], [400, 400], [100, 200]])  # (height, width)
    return boxes, labels, sizes


def test_hand_computed_coverage():
    boxes, labels, sizes = _hand_case()
    cov = anchor_coverage(boxes, labels, sizes, ANCHORS, ["cat", "dog", "bird"], iou=0.5, data_shape=300)
    assert (cov.overall.boxes, cov.overall.covered) == (3, 2)
    assert cov.overall.coverage == pytest.approx(2 / 3)
    assert cov.overall.mean_best_iou == pytest.approx((1 + 0.75 + 0.0064) / 3, abs=1e-6)
    np.testing.assert_allclose(cov.best_iou, [1.0, 0.75, 0.0064], atol=1e-6)
    assert {k: (r.boxes, r.covered) for k, r in cov.per_class.items()} == {
        "cat": (2, 1),
        "dog": (1, 1),
        "bird": (0, 0),
    }
    assert cov.per_class["bird"].coverage == 0.0
    assert {k: (r.boxes, r.covered) for k, r in cov.per_size.items()} == {
        "small": (1, 0),
        "medium": (0, 0),
        "large": (2, 2),
    }
    # a stricter threshold drops box 2 (IoU .75)
    strict = anchor_coverage(boxes, labels, sizes, ANCHORS, ["cat", "dog", "bird"], iou=0.8)
    assert strict.overall.covered == 1


def test_bucket_edges_scale_with_the_input():
    assert bucket_edges_px(300)[:2] == [("small", 0.0, 15.0), ("medium", 15.0, 45.0)]
    assert bucket_edges_px(640)[1][1:] == (32.0, 96.0)


def test_coverage_rejects_bad_inputs():
    boxes, labels, sizes = _hand_case()
    with pytest.raises(ConfigError, match="IoU threshold"):
        anchor_coverage(boxes, labels, sizes, ANCHORS, ["a", "b"], iou=0.0)
    with pytest.raises(ValueError, match="image sizes"):
        anchor_coverage(boxes, labels, sizes[:2], ANCHORS, ["a", "b"])


def test_best_anchor_iou_is_box_iou_max():
    gen = torch.Generator().manual_seed(0)
    boxes = torch.rand(300, 4, generator=gen)
    boxes[:, 2:] = boxes[:, :2] + boxes[:, 2:] * 0.5
    anchors, _ = network_anchors("tiny", 128)
    expected = box_iou(boxes, anchors).amax(dim=1)
    torch.testing.assert_close(best_anchor_iou(boxes, anchors, chunk=64), expected)


def test_network_anchors_are_the_models():
    anchors, layout = network_anchors("tiny", 128)
    model = build_ssd("tiny", 3, 128)
    torch.testing.assert_close(anchors, model.anchors)
    assert layout == {"sizes": model.sizes, "ratios": model.ratios}
    with pytest.raises(ConfigError, match="unknown network"):
        network_anchors("no_such_net", 128)


# ---------------------------------------------------------------------------------------------- k-means
_WH = st.lists(st.tuples(st.floats(0.01, 1.0), st.floats(0.01, 1.0)), min_size=1, max_size=60).map(
    lambda rows: np.array(rows)
)


@settings(max_examples=40, deadline=None)
@given(wh=_WH, k=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_kmeans_cluster_count_order_and_determinism(wh, k, seed):
    centroids, counts = kmeans_wh(wh, k, seed=seed)
    assert centroids.shape == (k, 2) and counts.shape == (k,)
    assert counts.sum() == len(wh)
    scale = np.sqrt(centroids[:, 0] * centroids[:, 1])
    assert np.all(np.diff(scale) >= 0)
    again, again_counts = kmeans_wh(wh, k, seed=seed)
    np.testing.assert_array_equal(centroids, again)
    np.testing.assert_array_equal(counts, again_counts)
    # every centroid lies within the boxes' range
    assert np.all(centroids >= wh.min(axis=0) - 1e-12) and np.all(centroids <= wh.max(axis=0) + 1e-12)


@settings(max_examples=25, deadline=None)
@given(w=st.floats(0.02, 0.5), h=st.floats(0.02, 0.5), n=st.integers(1, 30), layers=st.integers(1, 6))
@example(w=0.0625, h=0.021484375, n=1, layers=1)  # size 0.036644 once rounded to 4 decimals, 0.0366
def test_fit_on_one_shape_gives_its_ratio(w, h, n, layers):
    wh = np.tile([[w, h]], (n, 1))
    centroids, _ = kmeans_wh(wh, 4)
    np.testing.assert_allclose(centroids, np.tile([[w, h]], (4, 1)))
    options = fit_anchors(wh, layers, ratios_per_layer=3)
    assert set(options) == {"sizes", "ratios"}
    assert len(options["sizes"]) == len(options["ratios"]) == layers
    assert all(r == pytest.approx(w / h, rel=1e-3) for layer in options["ratios"] for r in layer)
    assert options["sizes"][0][0] == pytest.approx(np.sqrt(w * h), rel=1e-3)


def test_wh_iou_by_hand():
    # (1 x 1) vs (2 x 0.5): inter 1 * .5 = .5, union 1 + 1 - .5 = 1.5
    np.testing.assert_allclose(
        wh_iou(np.array([[1.0, 1.0]]), np.array([[2.0, 0.5], [1.0, 1.0]])), [[1 / 3, 1]]
    )


def test_fit_anchors_form_matches_the_network():
    rng = np.random.default_rng(1)
    wh = rng.uniform(0.05, 0.9, (500, 2))
    options = fit_anchors(wh, 6, ratios_per_layer=[3, 5, 5, 5, 3, 3], sizes_per_layer=2)
    assert [len(r) for r in options["ratios"]] == [3, 5, 5, 5, 3, 3]
    assert all(len(s) == 2 and s[0] <= s[1] for s in options["sizes"])
    firsts = [s[0] for s in options["sizes"]]
    assert firsts == sorted(firsts)  # the finest map gets the smallest anchors
    model = build_ssd("vgg16_reduced", 20, 300, **options)
    assert model.num_anchors == build_ssd("vgg16_reduced", 20, 300).num_anchors


def test_fit_ratios_keeps_sizes_and_layers_without_boxes():
    sizes, ratios = [[0.1, 0.14], [0.5, 0.6]], [[1, 2, 0.5], [1, 2, 0.5]]
    wh = np.tile([[0.05, 0.2]], (20, 1))  # sqrt(wh) = .1: all in layer 0
    options = fit_ratios(wh, sizes, ratios)
    assert options["sizes"] == sizes
    assert options["ratios"][0] == [0.25, 0.25, 0.25]
    assert options["ratios"][1] == [1.0, 2.0, 0.5]


def _tall_boxes(n: int = 400, seed: int = 0, side: int = 128):
    """Tall thin boxes, width : height = 1 : 4, in ``side x side`` images (pixels)."""
    rng = np.random.default_rng(seed)
    w = rng.uniform(0.06, 0.2, n)
    h = 4 * w
    cx, cy = rng.uniform(0.1, 0.9, n), rng.uniform(h / 2, 1 - h / 2)
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1) * side
    return boxes.astype(np.float32), rng.integers(0, 2, n), np.full((n, 2), side)


def test_fit_raises_coverage_of_skewed_boxes_and_builds():
    boxes, labels, sizes = _tall_boxes()
    fit = fit_network_anchors(boxes, labels, sizes, ["a", "b"], "tiny", 128)
    assert fit.after.overall.coverage > fit.before.overall.coverage
    assert fit.after.overall.mean_best_iou > fit.before.overall.mean_best_iou
    assert fit.improved and fit.options == fit.fitted and set(fit.options) == {"sizes", "ratios"}
    assert fit.method in {"kmeans", "ratios"} or fit.method.startswith("sizes from p")
    assert any(r == pytest.approx(0.25, abs=0.02) for layer in fit.options["ratios"] for r in layer)
    model = build_ssd("tiny", 2, 128, **fit.options)
    default = build_ssd("tiny", 2, 128)
    assert model.num_anchors == default.num_anchors  # the head shapes stay the same
    anchors, _ = network_anchors("tiny", 128, **fit.options)
    torch.testing.assert_close(model.anchors, anchors)
    with torch.no_grad():
        loc, cls = model(torch.zeros(1, 3, 128, 128))
    assert loc.shape == (1, 4 * len(model.anchors)) and cls.shape == (1, 3, len(model.anchors))
    assert torch.isfinite(loc).all() and torch.isfinite(cls).all()


def test_fit_falls_back_to_the_defaults_when_it_does_not_help():
    # boxes that are exactly the network's anchors: every box already covered with IoU 1
    anchors, _ = network_anchors("tiny", 128)
    boxes = anchors[::7].numpy() * 128
    fit = fit_network_anchors(boxes, np.zeros(len(boxes)), np.full((len(boxes), 2), 128), ["a"], "tiny", 128)
    assert fit.before.overall.coverage == 1.0
    assert not fit.improved and fit.options == {}


def test_fit_is_deterministic():
    boxes, labels, sizes = _tall_boxes(200, seed=3)
    first = fit_network_anchors(boxes, labels, sizes, ["a", "b"], "tiny", 128, seed=5)
    second = fit_network_anchors(boxes, labels, sizes, ["a", "b"], "tiny", 128, seed=5)
    assert first.fitted == second.fitted


def test_rescaled_sizes_spread_evenly_from_the_smallest_to_the_networks_last():
    sizes = [[0.2, 0.27], [0.37, 0.45], [0.54, 0.62], [0.71, 0.79]]
    moved = rescale_sizes(sizes, 0.08)
    # first sizes linspace(0.08, 0.71, 4) = 0.08, 0.29, 0.50, 0.71; second sizes sqrt(s_k s_k+1), and past the
    # last layer s_L^2 / s_L-1 = 0.71^2 / 0.5 = 1.0082 -> capped at 1: sqrt(0.71 * 1.0) = 0.8426
    assert moved == [[0.08, 0.1523], [0.29, 0.3808], [0.5, 0.5958], [0.71, 0.8426]]


def test_fits_are_judged_by_the_mean_class_coverage_first():
    from multibox.model.anchor_fit import Coverage, CoverageRow

    common_only = Coverage(
        0.5, 300, CoverageRow(100, 95, 0.7), {"a": CoverageRow(90, 90, 0.7), "b": CoverageRow(10, 5, 0.4)}
    )
    balanced = Coverage(
        0.5, 300, CoverageRow(100, 92, 0.6), {"a": CoverageRow(90, 83, 0.6), "b": CoverageRow(10, 9, 0.6)}
    )
    # mean class coverage (90/90 + 5/10) / 2 = 0.75 against (83/90 + 9/10) / 2 = 0.911
    assert fit_score(common_only) == pytest.approx((0.75, 0.95, 0.7))
    assert fit_score(balanced) > fit_score(common_only)


def test_a_rare_class_of_small_boxes_gets_smaller_anchors():
    rng = np.random.default_rng(0)
    side, n_big, n_small = 320, 300, 40
    big = rng.uniform(0.3, 0.5, n_big)  # squares of 30-50 % of the image
    small = rng.uniform(0.05, 0.07, n_small)  # 16-22 px at 320: below the default smallest anchor
    w = np.concatenate([big, small])
    cx, cy = rng.uniform(w / 2, 1 - w / 2), rng.uniform(w / 2, 1 - w / 2)
    boxes = (np.stack([cx - w / 2, cy - w / 2, cx + w / 2, cy + w / 2], axis=1) * side).astype(np.float32)
    labels = np.array([0] * n_big + [1] * n_small)
    fit = fit_network_anchors(boxes, labels, np.full((len(w), 2), side), ["big", "small"], "tiny", side)
    assert fit.improved
    assert fit.after.per_class["small"].coverage > fit.before.per_class["small"].coverage + 0.3
    assert fit.options["sizes"][0][0] < fit.default["sizes"][0][0]
