"""Evaluation of a detector on a dataset: VOC07 and VOC area mAP (and COCO AP when asked)."""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch
from torch.utils.data import DataLoader

from multibox.engine.diagnostics import DetectionDiagnostics
from multibox.engine.voc_metric import VOCMetric
from multibox.model import DetectionSettings


@torch.no_grad()
def evaluate(
    model,
    loader: DataLoader,
    class_names: Sequence[str],
    device: torch.device | str = "cpu",
    iou_threshold: float = 0.5,
    settings: DetectionSettings | None = None,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    coco: bool = False,
    image_ids: Sequence[int] | None = None,
    category_ids: Sequence[int] | None = None,
    progress: bool = False,
    image_names: Sequence[str] | None = None,
    diagnostics: bool = False,
    use_difficult: bool = False,
) -> dict:
    """Detect on every batch of ``loader`` (images ``(B, 3, H, W)``, labels ``(B, M, 6)``, not shuffled).

    ``model`` is an SSD or anything with its ``detect()``, such as :class:`multibox.deploy.OnnxDetector`; it
    decodes with its own detection settings (``model.detection``) unless ``settings`` are given.

    Batches may carry the dataset indices of their images, ``(images, labels, indices)``
    (``make_loader(..., return_indices=True)``); then ``image_sizes``, ``image_ids`` and ``image_names`` are
    looked up by index, so they stay aligned when the loader leaves out an image it cannot decode, and every
    dataset image missing from the batches is excluded from the score and named in ``result["excluded"]``:
    the score is that of the dataset without those images (bit for bit with ``batch_size=1``; otherwise up
    to the float rounding of the network on a batch one image smaller). Plain ``(images, labels)`` batches are
    taken in dataset order; when such a loader left images out, ``excluded`` is ``None`` (not known which),
    and with ``image_sizes`` or ``image_ids`` evaluation refuses (``ValueError``) as they no longer line up.

    Returns ``{"mAP_voc07", "mAP_area", "ap_voc07", "ap_area", "images", "images_per_second", "excluded"}``
    (``images`` the number scored, ``excluded`` the names of dataset images left out: ``image_names``, else
    the loader's record ids, else their indices) plus the COCO numbers (``coco_AP``, ``coco_AP50`` ...) when
    ``coco`` is set, which needs ``image_sizes`` (``(w, h)`` per dataset image) for COCO's area ranges, and
    then also ``coco_results``: the detections in COCO's results format, under the dataset's own
    ``image_ids`` and ``category_ids`` when given (COCO files; else an image's id is its dataset index + 1).
    With ``diagnostics`` it also holds ``"diagnostics"``: :meth:`DetectionDiagnostics.compute`'s result
    (per-class curves, F1-best thresholds, confusion matrix; :func:`write_diagnostics` draws them).
    ``use_difficult``: difficult ground truth scored as ordinary (VOC and diagnostics; the original's
    ``--use-difficult``); by default it is ignored, as the VOC devkit does.
    """
    # exported detectors (ONNX, TorchScript) have detect() only
    is_module = isinstance(model, torch.nn.Module)
    was_training = is_module and model.training
    if is_module:
        model.eval()
    voc07 = VOCMetric(class_names, iou_threshold, use_07_metric=True, use_difficult=use_difficult)
    area = VOCMetric(class_names, iou_threshold, use_07_metric=False, use_difficult=use_difficult)
    coco_metric = _coco_metric(class_names, category_ids, image_sizes) if coco else None
    diagnosis = (
        DetectionDiagnostics(class_names, iou_threshold, use_difficult=use_difficult) if diagnostics else None
    )
    decoding = settings.to_dict() if settings is not None else {}
    start = time.perf_counter()
    scored, indexed = [], None  # dataset indices evaluated; whether the batches carry indices
    for batch in _progress(loader, progress):
        images, labels = batch[0], batch[1]
        indexed = len(batch) > 2 if indexed is None else indexed
        indices = (
            [int(i) for i in batch[2]] if indexed else list(range(len(scored), len(scored) + len(images)))
        )
        scored += indices
        if len(images) == 0:  # every image of the batch failed to decode
            continue
        detections = model.detect(images.to(device, non_blocking=True), **decoding).cpu()
        voc07.update(detections, labels)
        area.update(detections, labels)
        if diagnosis is not None:
            diagnosis.update(detections, labels)
        if coco_metric is not None:
            ids = [i + 1 for i in indices] if image_ids is None else [image_ids[i] for i in indices]
            coco_metric.update(detections, labels, [image_sizes[i] for i in indices], ids)
    elapsed = time.perf_counter() - start
    if is_module:
        model.train(was_training)
    excluded = _excluded(loader, scored, bool(indexed), image_names, image_sizes, image_ids)
    result = _result(voc07, area, coco_metric, len(scored), elapsed, excluded)
    if diagnosis is not None:
        result["diagnostics"] = diagnosis.compute()
    return result


def _coco_metric(class_names: Sequence[str], category_ids, image_sizes):
    from multibox.engine.coco_metric import COCOMetric

    if image_sizes is None:
        raise ValueError("COCO evaluation needs image_sizes")
    return COCOMetric(class_names, category_ids=category_ids)


def _progress(loader, progress: bool):
    if not progress:
        return loader
    import sys

    from tqdm import tqdm

    return tqdm(loader, desc="evaluating", unit="batch", leave=False, disable=not sys.stderr.isatty())


def _result(voc07, area, coco_metric, seen: int, elapsed: float, excluded) -> dict:
    r07, rarea = voc07.compute(), area.compute()
    result = {
        "mAP_voc07": r07["mAP"],
        "mAP_area": rarea["mAP"],
        "ap_voc07": r07["ap"],
        "ap_area": rarea["ap"],
        "images": seen,
        "images_per_second": seen / elapsed if elapsed > 0 else 0.0,
        "table": voc07.table(),
        "excluded": excluded,
    }
    if coco_metric is not None:
        result.update({f"coco_{k}": v for k, v in coco_metric.compute().items()})
        result["coco_results"] = coco_metric.results()
    return result


def _excluded(
    loader,
    scored: list[int],
    indexed: bool,
    image_names: Sequence[str] | None,
    image_sizes: Sequence | None,
    image_ids: Sequence | None,
) -> list[str] | None:
    """Names of the dataset images that no batch held (images the loader could not decode)."""
    records = getattr(getattr(loader, "dataset", None), "dataset", None)  # make_loader's LoaderDataset
    for known in (image_names, image_sizes, image_ids, getattr(loader, "dataset", None)):
        try:
            total = len(known)  # type: ignore[arg-type]
            break
        except TypeError:
            continue
    else:
        return []
    if not indexed:
        if len(scored) == total:
            return []
        if image_sizes is not None or image_ids is not None:
            raise ValueError(
                f"the loader gave {len(scored)} of {total} images without their indices, so image sizes and ids "
                "no longer line up; build it with make_loader(..., return_indices=True)"
            )
        return None
    missing = sorted(set(range(total)) - set(scored))
    if image_names is not None:
        return [str(image_names[i]) for i in missing]
    if records is not None and hasattr(records, "records"):
        return [records.records[i].image_id for i in missing]
    return [str(i) for i in missing]
