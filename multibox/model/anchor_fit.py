"""Anchor analysis: how well a network's anchors cover a dataset's boxes, and anchors fitted to them.

Everything is in the network's input frame: images are resized to ``S x S`` without keeping the aspect
(:mod:`multibox.model.resize`), so a box's normalised corners ``x / width``, ``y / height`` are its place in the
input and the IoU with the normalised anchors is the IoU in input pixels.

Size buckets are COCO's (``sqrt(area)`` < 32, 32-96, > 96 px of a ~640 px image) scaled to the input:
``small`` below ``0.05 S``, ``medium`` from ``0.05 S`` to below ``0.15 S``, ``large`` from ``0.15 S`` on
(15 and 45 px at S = 300), ``sqrt(area)`` measured in pixels of the ``S x S`` input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from multibox.errors import ConfigError
from multibox.model.builder import build_ssd

SIZE_BUCKETS = (("small", 0.0, 0.05), ("medium", 0.05, 0.15), ("large", 0.15, math.inf))
"""``(name, low, high)``: a box is in a bucket when ``low * S <= sqrt(area in input pixels) < high * S``."""

_CHUNK = 2048  # boxes per IoU block: (2048, A) floats at a time


@dataclass(frozen=True)
class CoverageRow:
    """One line of a coverage table: ``boxes`` ground-truth boxes, ``covered`` of them with a best anchor IoU
    at or above the threshold, ``mean_best_iou`` the mean of their best IoUs (0 for no boxes)."""

    boxes: int
    covered: int
    mean_best_iou: float

    @property
    def coverage(self) -> float:
        """``covered / boxes`` (0 for no boxes): the best recall the anchors allow."""
        return self.covered / self.boxes if self.boxes else 0.0


@dataclass(frozen=True)
class Coverage:
    """Anchor coverage of a set of boxes: overall, per class (every class name, in order) and per size bucket
    (:data:`SIZE_BUCKETS` order); ``best_iou`` ``(N,)`` is each box's best anchor IoU."""

    threshold: float
    data_shape: int
    overall: CoverageRow
    per_class: dict[str, CoverageRow] = field(default_factory=dict)
    per_size: dict[str, CoverageRow] = field(default_factory=dict)
    best_iou: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))


def normalized_boxes(gt_boxes, image_sizes) -> torch.Tensor:
    """Pixel corners ``(N, 4)`` of images of ``image_sizes`` ``(N, 2)`` ``(height, width)`` per box -> corners
    ``(N, 4)`` float32 normalised to their image (the network input frame)."""
    boxes = torch.as_tensor(np.asarray(gt_boxes, np.float32).reshape(-1, 4))
    sizes = torch.as_tensor(np.asarray(image_sizes, np.float32).reshape(-1, 2))
    if len(sizes) != len(boxes):
        raise ValueError(f"{len(sizes)} image sizes for {len(boxes)} boxes; give one (height, width) per box")
    if bool((sizes <= 0).any()):
        raise ValueError("image sizes must be positive; fix the annotation's width/height")
    scale = torch.stack([sizes[:, 1], sizes[:, 0], sizes[:, 1], sizes[:, 0]], dim=1)  # (N, 4)
    return boxes / scale


def _best_iou_block(boxes: torch.Tensor, anchors: torch.Tensor, anchor_area: torch.Tensor) -> torch.Tensor:
    """``box_iou(boxes, anchors).amax(1)`` for ``(P, 4)`` boxes and ``(A, 4)`` anchors of positive area, with
    in-place arithmetic (a third of ``box_iou``'s temporaries) -> ``(P,)``."""
    ix = torch.minimum(boxes[:, None, 2], anchors[None, :, 2])
    ix.sub_(torch.maximum(boxes[:, None, 0], anchors[None, :, 0])).clamp_min_(0)
    iy = torch.minimum(boxes[:, None, 3], anchors[None, :, 3])
    iy.sub_(torch.maximum(boxes[:, None, 1], anchors[None, :, 1])).clamp_min_(0)
    inter = ix.mul_(iy)  # (P, A)
    box_area = ((boxes[:, 2] - boxes[:, 0]).clamp_min(0) * (boxes[:, 3] - boxes[:, 1]).clamp_min(0))[:, None]
    union = (box_area + anchor_area[None, :]).sub_(inter)  # >= the anchor's area > 0
    return inter.div_(union).amax(dim=1)


def best_anchor_iou(boxes: torch.Tensor, anchors: torch.Tensor, chunk: int = _CHUNK) -> torch.Tensor:
    """The best IoU of each normalised box ``(N, 4)`` with any anchor ``(A, 4)`` -> ``(N,)`` (blocks of
    ``chunk`` boxes, so memory stays ``chunk x A``); anchors of no area are left out."""
    anchors = anchors.to(torch.float32)
    boxes = boxes.to(torch.float32)
    area = (anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])
    anchors, area = anchors[area > 0], area[area > 0]
    if len(anchors) == 0 or len(boxes) == 0:
        return torch.zeros(len(boxes))
    with torch.no_grad():
        out = [_best_iou_block(boxes[i : i + chunk], anchors, area) for i in range(0, len(boxes), chunk)]
    return torch.cat(out)


def _row(best: np.ndarray, mask: np.ndarray, iou: float) -> CoverageRow:
    chosen = best[mask]
    mean = float(chosen.mean()) if len(chosen) else 0.0
    return CoverageRow(int(mask.sum()), int((chosen >= iou).sum()), mean)


def size_bucket_index(boxes: torch.Tensor) -> np.ndarray:
    """The :data:`SIZE_BUCKETS` index ``(N,)`` of normalised boxes ``(N, 4)`` (``sqrt(area)`` as a fraction
    of the input side, which is the same for every ``S``)."""
    w = (boxes[:, 2] - boxes[:, 0]).clamp_min(0)
    h = (boxes[:, 3] - boxes[:, 1]).clamp_min(0)
    side = torch.sqrt(w * h).numpy()
    edges = np.array([low for _, low, _ in SIZE_BUCKETS[1:]], np.float64)
    return np.searchsorted(edges, side, side="right")


def anchor_coverage(
    gt_boxes,
    gt_labels,
    image_sizes,
    anchors: torch.Tensor,
    class_names: Sequence[str],
    iou: float = 0.5,
    data_shape: int = 300,
) -> Coverage:
    """The share of boxes some anchor matches with IoU >= ``iou`` (best possible recall), per class and size.

    Args:
        gt_boxes: ``(N, 4)`` pixel corners ``[x1, y1, x2, y2]`` in their own image.
        gt_labels: ``(N,)`` class ids into ``class_names``.
        image_sizes: ``(N, 2)`` ``(height, width)`` of each box's image.
        anchors: ``(A, 4)`` normalised corners, the network's anchors for ``data_shape`` (``model.anchors``).
        data_shape: the input side ``S``; it only names the size buckets' pixel edges (they scale with ``S``).
    """
    if not 0.0 < iou <= 1.0:
        raise ConfigError(f"the IoU threshold must lie in (0, 1], got {iou}")
    boxes = normalized_boxes(gt_boxes, image_sizes)
    labels = np.asarray(gt_labels, np.int64).reshape(-1)
    if len(labels) != len(boxes):
        raise ValueError(f"{len(labels)} labels for {len(boxes)} boxes")
    best = best_anchor_iou(boxes, anchors).numpy()
    buckets = size_bucket_index(boxes)
    every = np.ones(len(best), bool)
    return Coverage(
        threshold=float(iou),
        data_shape=int(data_shape),
        overall=_row(best, every, iou),
        per_class={name: _row(best, labels == k, iou) for k, name in enumerate(class_names)},
        per_size={name: _row(best, buckets == k, iou) for k, (name, _, _) in enumerate(SIZE_BUCKETS)},
        best_iou=best,
    )


def bucket_edges_px(data_shape: int) -> list[tuple[str, float, float]]:
    """:data:`SIZE_BUCKETS` in pixels of the ``data_shape x data_shape`` input."""
    return [(name, low * data_shape, high * data_shape) for name, low, high in SIZE_BUCKETS]


# ------------------------------------------------------------------------------------------------ k-means
def wh_iou(wh1: np.ndarray, wh2: np.ndarray) -> np.ndarray:
    """IoU of boxes centred at the origin: ``(N, 2)`` and ``(K, 2)`` widths/heights -> ``(N, K)``."""
    inter = np.minimum(wh1[:, None, 0], wh2[None, :, 0]) * np.minimum(wh1[:, None, 1], wh2[None, :, 1])
    union = wh1[:, None, 0] * wh1[:, None, 1] + wh2[None, :, 0] * wh2[None, :, 1] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _seed_centroids(wh: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds ``(k, 2)`` under the distance ``1 - IoU``."""
    centroids = [wh[rng.integers(len(wh))]]
    for _ in range(1, k):
        distance = 1.0 - wh_iou(wh, np.asarray(centroids)).max(axis=1)  # (N,)
        total = distance.sum()
        pick = rng.choice(len(wh), p=distance / total) if total > 0 else rng.integers(len(wh))
        centroids.append(wh[pick])
    return np.asarray(centroids, np.float64)


def kmeans_wh(boxes_wh, k: int, seed: int = 0, iterations: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """k-means of box shapes ``(N, 2)`` (width, height) with distance ``1 - IoU`` of origin-centred boxes.

    k-means++ seeding from ``numpy.random.default_rng(seed)`` (deterministic), mean updates, an emptied cluster
    re-seeded at the worst-fitting box. Returns the centroids ``(k, 2)`` sorted by ``sqrt(w h)`` and the
    number of boxes in each ``(k,)``.
    """
    wh = np.asarray(boxes_wh, np.float64).reshape(-1, 2)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    wh = wh[np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)]
    if len(wh) == 0:
        raise ValueError("no box with a positive width and height to fit anchors to")
    rng = np.random.default_rng(seed)
    centroids = _seed_centroids(wh, k, rng)
    assign = np.full(len(wh), -1)
    for _ in range(iterations):
        iou = wh_iou(wh, centroids)  # (N, k)
        new = iou.argmax(axis=1)
        counts = np.bincount(new, minlength=k)
        for empty in np.flatnonzero(counts == 0):  # at most k re-seeds per round
            worst = int(iou.max(axis=1).argmin())
            centroids[empty] = wh[worst]
            iou[worst] = 0.0
            iou[worst, empty] = 1.0
            new[worst] = empty
        if np.array_equal(new, assign):
            break
        assign = new
        sums = np.zeros((k, 2))
        np.add.at(sums, assign, wh)
        counts = np.bincount(assign, minlength=k)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
    counts = np.bincount(wh_iou(wh, centroids).argmax(axis=1), minlength=k)
    order = np.argsort(np.sqrt(centroids[:, 0] * centroids[:, 1]), kind="stable")
    return centroids[order], counts[order]


# ------------------------------------------------------------------------------------------------ the fit
def _per_layer_counts(value: int | Sequence[int], num_layers: int, name: str) -> list[int]:
    counts = [int(value)] * num_layers if isinstance(value, int) else [int(v) for v in value]
    if len(counts) != num_layers or any(c < 1 for c in counts):
        raise ValueError(f"{name} must be a positive count or one per layer ({num_layers}), got {value}")
    return counts


def _layer_ratios(centroids: np.ndarray, counts: np.ndarray) -> list[float]:
    """Ratios ``w / h`` of a layer's clusters, the most populated first (it gets every size)."""
    order = np.argsort(-counts, kind="stable")
    return [float(f"{centroids[i, 0] / centroids[i, 1]:.4g}") for i in order]  # 4 significant digits


def _layer_sizes(scales: Sequence[float], sizes_per_layer: Sequence[int]) -> list[list[float]]:
    """``[s_k, s_k (s_k+1 / s_k)^(1/n), ...]`` per layer (n = 2: ``[s_k, sqrt(s_k s_k+1)]``, the original's
    form); past the last layer ``s_L^2 / s_L-1`` stands for the next scale, at most 1."""
    scales = [float(s) for s in scales]
    last = scales[-1] * scales[-1] / scales[-2] if len(scales) > 1 else scales[-1] * 1.5
    following = [*scales[1:], max(scales[-1], min(1.0, last))]
    return [
        [float(f"{s * (t / s) ** (j / n):.4g}") for j in range(n)]  # 4 significant digits
        for s, t, n in zip(scales, following, sizes_per_layer, strict=True)
    ]


def fit_anchors(
    boxes_wh,
    num_layers: int,
    ratios_per_layer: int | Sequence[int] = 3,
    sizes_per_layer: int | Sequence[int] = 2,
    seed: int = 0,
    iterations: int = 100,
) -> dict[str, list[list[float]]]:
    """Anchor sizes and ratios fitted to normalised box shapes ``(N, 2)`` (width, height of the input).

    k-means (:func:`kmeans_wh`, ``1 - IoU``) into ``sum(ratios_per_layer)`` clusters, sorted by ``sqrt(w h)``
    and dealt to the layers in that order, ``ratios_per_layer[k]`` to layer ``k`` (the first layer, the finest
    map, gets the smallest). Layer ``k``'s scale ``s_k`` is the geometric mean of its clusters' ``sqrt(w h)``,
    its ratios their ``w / h`` (most populated first). With the network's own counts per layer the anchors per
    location, ``len(sizes) + len(ratios) - 1``, and so the head shapes stay the same.

    Returns:
        ``{"sizes": [[s_k, sqrt(s_k s_k+1)], ...], "ratios": [[r, ...], ...]}``, one list per layer: the
        ``build_ssd`` / ``network_options`` overrides.
    """
    ratio_counts = _per_layer_counts(ratios_per_layer, num_layers, "ratios_per_layer")
    size_counts = _per_layer_counts(sizes_per_layer, num_layers, "sizes_per_layer")
    centroids, counts = kmeans_wh(boxes_wh, sum(ratio_counts), seed=seed, iterations=iterations)
    bounds = np.cumsum([0, *ratio_counts])
    scales, ratios = [], []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        block = centroids[lo:hi]
        scales.append(float(np.exp(np.log(np.sqrt(block[:, 0] * block[:, 1])).mean())))
        ratios.append(_layer_ratios(block, counts[lo:hi]))
    return {"sizes": _layer_sizes(scales, size_counts), "ratios": ratios}


def fit_ratios(
    boxes_wh,
    sizes: Sequence[Sequence[float]],
    ratios: Sequence[Sequence[float]],
    seed: int = 0,
    iterations: int = 100,
) -> dict[str, list[list[float]]]:
    """The layers' own ``sizes`` kept, their ``ratios`` fitted: each box ``(N, 2)`` goes to the layer whose
    first size is nearest its ``sqrt(w h)`` (in log), and that layer's boxes are clustered into
    ``len(ratios[k])`` shapes; a layer without boxes keeps its ratios. Returns ``{"sizes", "ratios"}``."""
    wh = np.asarray(boxes_wh, np.float64).reshape(-1, 2)
    wh = wh[np.isfinite(wh).all(axis=1) & (wh > 0).all(axis=1)]
    first = np.log([float(s[0]) for s in sizes])  # (L,)
    layer = np.abs(np.log(np.sqrt(wh[:, 0] * wh[:, 1]))[:, None] - first[None, :]).argmin(axis=1)  # (N,)
    fitted = []
    for k, own in enumerate(ratios):
        chosen = wh[layer == k]
        if len(chosen) == 0:
            fitted.append([float(r) for r in own])
            continue
        centroids, counts = kmeans_wh(chosen, len(own), seed=seed, iterations=iterations)
        fitted.append(_layer_ratios(centroids, counts))
    return {"sizes": [[float(s) for s in v] for v in sizes], "ratios": fitted}


def rescale_sizes(sizes: Sequence[Sequence[float]], smallest: float) -> list[list[float]]:
    """The layers' ``sizes`` with their scale range moved to start at ``smallest``: the first sizes spread
    evenly from ``smallest`` to the last layer's own (as SSD spreads them), each layer's second size the
    geometric mean with the next scale."""
    first = [float(v[0]) for v in sizes]
    top = first[-1]
    scales = list(np.linspace(smallest, top, len(first))) if len(first) > 1 else [smallest]
    return _layer_sizes(scales, [len(v) for v in sizes])


def size_candidates(boxes_wh, sizes, ratios, seed: int = 0) -> dict[str, dict]:
    """Options that keep the network's ratios counts but move its smallest size to low quantiles of the boxes'
    ``sqrt(w h)`` (the 2nd, 5th, 10th, 20th percentiles): small objects that no anchor matches at IoU 0.5 are
    the usual cause of low coverage. Each also with its ratios fitted (:func:`fit_ratios`)."""
    wh = np.asarray(boxes_wh, np.float64).reshape(-1, 2)
    scale = np.sqrt(wh[:, 0] * wh[:, 1])
    scale = scale[np.isfinite(scale) & (scale > 0)]
    top = float(sizes[-1][0])
    candidates = {}
    for q in (2, 5, 10, 20):
        smallest = float(f"{np.percentile(scale, q):.4g}")
        if not 0 < smallest < top:
            continue
        moved = rescale_sizes(sizes, smallest)
        candidates[f"sizes from p{q}"] = {"sizes": moved, "ratios": [list(map(float, r)) for r in ratios]}
        candidates[f"sizes from p{q} + ratios"] = fit_ratios(wh, moved, ratios, seed=seed)
    return candidates


def fit_score(coverage: Coverage) -> tuple[float, float, float]:
    """How a fit is judged: the mean over classes with boxes of their coverage (mAP averages classes, so a
    rare class counts as much as a common one), then overall coverage, then the mean best IoU."""
    rows = [row for row in coverage.per_class.values() if row.boxes]
    by_class = float(np.mean([row.coverage for row in rows])) if rows else coverage.overall.coverage
    return by_class, coverage.overall.coverage, coverage.overall.mean_best_iou


@dataclass(frozen=True)
class AnchorFit:
    """The anchors fitted to a dataset and the coverage before and after.

    ``options`` are the ``network_options`` to train with: the fitted ``{"sizes", "ratios"}`` when they raise
    the overall coverage, else ``{}`` (the network's defaults). ``fitted`` is the best candidate either way,
    ``after`` its coverage, ``method`` how it was fitted (``"kmeans"``: sizes and ratios, ``"ratios"``: the
    network's sizes with fitted ratios).
    """

    network: str
    data_shape: int
    default: dict[str, list[list[float]]]
    fitted: dict[str, list[list[float]]]
    method: str
    before: Coverage
    after: Coverage

    @property
    def improved(self) -> bool:
        """Whether the fit scores better than the network's own anchors (:func:`fit_score`)."""
        return fit_score(self.after) > fit_score(self.before)

    @property
    def options(self) -> dict[str, list[list[float]]]:
        return dict(self.fitted) if self.improved else {}


def network_anchors(network: str, data_shape: int = 300, **options) -> tuple[torch.Tensor, dict]:
    """The anchors ``(A, 4)`` (normalised corners) of ``network`` at ``data_shape`` with ``options`` (build_ssd
    overrides), and its layout ``{"sizes", "ratios"}`` per layer."""
    try:
        model = build_ssd(network, 1, data_shape, **options)
    except KeyError as error:
        raise ConfigError(str(error.args[0])) from error
    return model.anchors.detach().cpu(), {"sizes": model.sizes, "ratios": model.ratios}


def fit_network_anchors(
    gt_boxes,
    gt_labels,
    image_sizes,
    class_names: Sequence[str],
    network: str = "vgg16_reduced",
    data_shape: int = 300,
    iou: float = 0.5,
    seed: int = 0,
) -> AnchorFit:
    """Fit anchors of ``network`` at ``data_shape`` to the boxes (as :func:`anchor_coverage` takes them) and
    measure both: candidates :func:`fit_anchors` (same anchors per location as the network) and
    :func:`fit_ratios`, the one of higher overall coverage (then mean best IoU) kept as ``fitted``."""
    anchors, default = network_anchors(network, data_shape)
    before = anchor_coverage(gt_boxes, gt_labels, image_sizes, anchors, class_names, iou, data_shape)
    boxes = normalized_boxes(gt_boxes, image_sizes)
    wh = (boxes[:, 2:] - boxes[:, :2]).numpy()
    if not ((wh > 0).all(axis=1)).any():
        raise ConfigError("no box with a positive width and height to fit anchors to; check the dataset")
    num_layers = len(default["sizes"])
    candidates = {
        "kmeans": fit_anchors(
            wh,
            num_layers,
            [len(r) for r in default["ratios"]],
            [len(s) for s in default["sizes"]],
            seed=seed,
        ),
        "ratios": fit_ratios(wh, default["sizes"], default["ratios"], seed=seed),
        **size_candidates(wh, default["sizes"], default["ratios"], seed=seed),
    }
    scored = []
    for method, options in candidates.items():
        fitted_anchors, _ = network_anchors(network, data_shape, **options)
        after = anchor_coverage(
            gt_boxes, gt_labels, image_sizes, fitted_anchors, class_names, iou, data_shape
        )
        scored.append((fit_score(after), method, options, after))
    _, method, options, after = max(scored, key=lambda item: item[0])
    return AnchorFit(network, int(data_shape), default, options, method, before, after)
