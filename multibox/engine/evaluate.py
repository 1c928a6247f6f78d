"""Evaluation of a detector on a dataset: VOC07 and VOC area mAP (and COCO AP when asked)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from multibox.engine.metrics import VOCMetric


@torch.no_grad()
def evaluate(
    model,
    loader: DataLoader,
    class_names: Sequence[str],
    device: torch.device | str = "cpu",
    iou_threshold: float = 0.5,
    nms_threshold: float = 0.45,
    nms_topk: int = 400,
    per_class: bool = True,
    force_suppress: bool = False,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    coco: bool = False,
    image_ids: Sequence[int] | None = None,
    category_ids: Sequence[int] | None = None,
    progress: bool = False,
) -> dict:
    """Detect on every batch of ``loader`` (images ``(B, 3, H, W)``, labels ``(B, M, 6)``, not shuffled).

    ``model`` is an SSD or anything with its ``detect()``, such as :class:`multibox.deploy.OnnxDetector`.

    Returns ``{"mAP_voc07", "mAP_area", "ap_voc07", "ap_area", "images", "images_per_second"}`` plus the COCO
    numbers (``coco_AP``, ``coco_AP50`` ...) when ``coco`` is set, which needs ``image_sizes`` (``(w, h)`` per
    image in loader order) for COCO's area ranges, and then also ``coco_results``: the detections in COCO's
    results format, under the dataset's own ``image_ids`` and ``category_ids`` when given (COCO files).
    """
    is_module = isinstance(
        model, torch.nn.Module
    )  # exported detectors (ONNX, TorchScript) have detect() only
    was_training = is_module and model.training
    if is_module:
        model.eval()
    voc07 = VOCMetric(class_names, iou_threshold, use_07_metric=True)
    area = VOCMetric(class_names, iou_threshold, use_07_metric=False)
    coco_metric = None
    if coco:
        from multibox.engine.coco_metric import COCOMetric

        if image_sizes is None:
            raise ValueError("COCO evaluation needs image_sizes")
        coco_metric = COCOMetric(class_names, category_ids=category_ids)
    batches = loader
    if progress:
        import sys

        from tqdm import tqdm

        batches = tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=not sys.stderr.isatty())
    seen, start = 0, time.perf_counter()
    for images, labels in batches:
        images = images.to(device, non_blocking=True)
        detections = model.detect(
            images,
            nms_threshold=nms_threshold,
            nms_topk=nms_topk,
            per_class=per_class,
            force_suppress=force_suppress,
        ).cpu()
        voc07.update(detections, labels)
        area.update(detections, labels)
        if coco_metric is not None:
            ids = None if image_ids is None else image_ids[seen : seen + len(images)]
            coco_metric.update(detections, labels, image_sizes[seen : seen + len(images)], ids)
        seen += len(images)
    elapsed = time.perf_counter() - start
    if is_module:
        model.train(was_training)
    r07, rarea = voc07.compute(), area.compute()
    result = {
        "mAP_voc07": r07["mAP"],
        "mAP_area": rarea["mAP"],
        "ap_voc07": r07["ap"],
        "ap_area": rarea["ap"],
        "images": seen,
        "images_per_second": seen / elapsed if elapsed > 0 else 0.0,
        "table": voc07.table(),
    }
    if coco_metric is not None:
        result.update({f"coco_{k}": v for k, v in coco_metric.compute().items()})
        result["coco_results"] = coco_metric.results()
    return result
