"""COCO AP / AP50 / AP75 / AP small, medium, large through pycocotools (the ``coco`` extra)."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence

import numpy as np
import torch

STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")


def _require_pycocotools():
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:  # pragma: no cover - depends on the installation
        raise ImportError("COCO metrics need pycocotools: pip install 'multibox[coco]'") from error
    return COCO, COCOeval


class COCOMetric:
    """Accumulates normalised detections and labels with image sizes; ``compute()`` runs COCOeval.

    Boxes are scaled to pixels with each image's size so the small/medium/large areas mean what COCO means.
    Rows of ``labels`` whose 6th column is > 0 are treated as crowd regions (``iscrowd=1``: ignored).

    Images are numbered 1, 2, ... and classes ``c`` get category ``c + 1`` unless the dataset's own ids are
    given (``image_ids`` in :meth:`update`, ``category_ids`` here), so :meth:`results` can be scored against
    the original annotation file.
    """

    def __init__(
        self,
        class_names: Sequence[str],
        max_detections: int = 100,
        category_ids: Sequence[int] | None = None,
    ):
        self.class_names = list(class_names)
        self.max_detections = max_detections
        if category_ids is not None and (
            len(category_ids) != len(self.class_names) or len(set(category_ids)) != len(category_ids)
        ):
            raise ValueError(
                f"category_ids must give {len(self.class_names)} distinct ids, one per class, got {category_ids}"
            )
        self.category_ids = [int(c) for c in category_ids] if category_ids is not None else None
        self.reset()

    def _category(self, class_index: int) -> int:
        return self.category_ids[class_index] if self.category_ids is not None else class_index + 1

    def reset(self) -> None:
        self._images, self._annotations, self._results = [], [], []

    def update(self, detections, labels, image_sizes, image_ids: Sequence[int] | None = None) -> None:
        """Add a batch: detections ``(B, K, 6)`` ``[id, score, x1..y2]``, labels ``(B, M, 6)``, sizes ``(B, 2)``
        as ``(width, height)`` in pixels; coordinates normalised to [0, 1]; ``image_ids`` the dataset's own
        ids of the ``B`` images (default: a running count from 1)."""
        detections, labels, sizes = (
            x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)
            for x in (detections, labels, image_sizes)
        )
        if image_ids is None:
            image_ids = range(len(self._images) + 1, len(self._images) + 1 + len(detections))
        if len(image_ids) != len(detections):
            raise ValueError(f"{len(image_ids)} image ids for {len(detections)} images")
        for det, gt, (width, height), image_id in zip(detections, labels, sizes, image_ids, strict=True):
            image_id = int(image_id)
            self._images.append({"id": image_id, "width": float(width), "height": float(height)})
            scale = np.array([width, height, width, height])
            for row in gt[gt[:, 0] >= 0]:
                x1, y1, x2, y2 = row[1:5] * scale
                crowd = int(len(row) > 5 and row[5] > 0)
                self._annotations.append(
                    {
                        "id": len(self._annotations) + 1,
                        "image_id": image_id,
                        "category_id": self._category(int(row[0])),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": (x2 - x1) * (y2 - y1),
                        "iscrowd": crowd,
                    }
                )
            for row in det[det[:, 0] >= 0]:
                x1, y1, x2, y2 = row[2:6] * scale
                self._results.append(
                    {
                        "image_id": image_id,
                        "category_id": self._category(int(row[0])),
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "score": float(row[1]),
                    }
                )

    def results(self) -> list[dict]:
        """The detections in COCO's results format (``image_id``, ``category_id``, ``bbox`` [x, y, w, h] in
        pixels, ``score``), ready for ``json.dump`` and ``COCO.loadRes`` on the original annotation file."""
        return [
            {
                "image_id": r["image_id"],
                "category_id": r["category_id"],
                "bbox": [float(v) for v in r["bbox"]],
                "score": float(r["score"]),
            }
            for r in self._results
        ]

    def compute(self) -> dict[str, float]:
        """The twelve COCO summary numbers (``AP`` = AP@[.5:.95] ...); -1 where undefined."""
        COCO, COCOeval = _require_pycocotools()
        ground_truth = COCO()
        ground_truth.dataset = {
            "images": self._images,
            "annotations": self._annotations,
            "categories": [{"id": self._category(i), "name": n} for i, n in enumerate(self.class_names)],
        }
        with contextlib.redirect_stdout(io.StringIO()):
            ground_truth.createIndex()
            if not self._results:
                return dict.fromkeys(STAT_NAMES, 0.0)
            detections = ground_truth.loadRes(self._results)
            evaluator = COCOeval(ground_truth, detections, iouType="bbox")
            evaluator.params.maxDets = [1, 10, self.max_detections]
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return {name: float(value) for name, value in zip(STAT_NAMES, evaluator.stats, strict=True)}
