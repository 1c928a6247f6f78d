"""Dataset checks that catch what breaks training (bad boxes, bad images), and the training cleaning rule."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from multibox.data.records import DetectionDataset, DetectionRecord, Problem

_FORMAT_SUFFIXES = {
    "JPEG": {".jpg", ".jpeg", ".jpe"},
    "PNG": {".png"},
    "BMP": {".bmp"},
    "GIF": {".gif"},
    "TIFF": {".tif", ".tiff"},
    "WEBP": {".webp"},
}
_EXIF_ORIENTATION = 0x0112

# Problems that break a training run that trusts its data (NaN losses, crashes): `data check` exits non-zero.
FATAL_KINDS = {
    "unreadable image",
    "truncated image",
    "unreadable annotation",
    "degenerate box",
    "non-finite box",
    "bad list line",
}


@dataclass
class ValidationReport:
    """What `check_dataset` found: problems with their image ids, plus dataset totals."""

    name: str
    num_images: int
    num_objects: int
    problems: list[Problem] = field(default_factory=list)

    @property
    def fatal(self) -> bool:
        return any(p.fatal for p in self.problems)

    def counts(self) -> Counter:
        return Counter(p.kind for p in self.problems)

    def format(self, examples: int = 5) -> str:
        """A human-readable report: one block per kind of problem with a few example files."""
        lines = [f"{self.name}: {self.num_images} images, {self.num_objects} boxes"]
        if not self.problems:
            lines.append("no problems found")
            return "\n".join(lines)
        by_kind: dict[str, list[Problem]] = {}
        for problem in self.problems:
            by_kind.setdefault(problem.kind, []).append(problem)
        for kind, found in sorted(by_kind.items(), key=lambda kv: (not kv[1][0].fatal, kv[0])):
            level = "ERROR" if found[0].fatal else "warning"
            lines.append(f"{level:>7}  {kind}: {len(found)}")
            for problem in found[:examples]:
                lines.append(f"           {problem.image_id}: {problem.detail}".rstrip(": "))
            if len(found) > examples:
                lines.append(f"           ... and {len(found) - examples} more")
        return "\n".join(lines)


def _check_boxes(record: DetectionRecord) -> list[Problem]:
    problems = []
    boxes = record.boxes
    finite = np.isfinite(boxes).all(axis=1)
    for row in np.flatnonzero(~finite):
        problems.append(
            Problem("non-finite box", record.image_id, f"object {row}: {boxes[row].tolist()}", True)
        )
    degenerate = finite & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1]))
    for row in np.flatnonzero(degenerate):
        problems.append(
            Problem(
                "degenerate box",
                record.image_id,
                f"object {row}: x2 <= x1 or y2 <= y1 {boxes[row].tolist()}",
                True,
            )
        )
    if record.width > 0 and record.height > 0:
        outside = finite & (
            (boxes[:, 0] < 0)
            | (boxes[:, 1] < 0)
            | (boxes[:, 2] > record.width)
            | (boxes[:, 3] > record.height)
        )
        for row in np.flatnonzero(outside):
            detail = f"object {row}: {boxes[row].tolist()} outside {record.width}x{record.height}"
            problems.append(Problem("box outside the image", record.image_id, detail))
    if record.num_objects == 0:
        problems.append(Problem("image without boxes", record.image_id))
    return problems


def _check_image(record: DetectionRecord, decode: bool) -> tuple[list[Problem], str | None]:
    """Header (and optionally full-decode) checks of one image file; returns problems and a content hash."""
    if callable(record.image):
        return [], None
    path = Path(record.image)
    problems = []
    try:
        data = path.read_bytes()
    except OSError as error:
        return [Problem("unreadable image", record.image_id, f"{path.name}: {error}", True)], None
    try:
        with Image.open(path) as image:
            if path.suffix.lower() not in _FORMAT_SUFFIXES.get(image.format or "", {path.suffix.lower()}):
                problems.append(
                    Problem(
                        "content does not match extension",
                        record.image_id,
                        f"{path.name} holds {image.format}",
                    )
                )
            if image.mode not in ("RGB",):
                problems.append(
                    Problem("not an RGB image", record.image_id, f"{path.name}: mode {image.mode}")
                )
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation not in (0, 1):
                problems.append(
                    Problem(
                        "EXIF-rotated image",
                        record.image_id,
                        f"{path.name}: orientation {orientation}; boxes refer to the stored pixels",
                    )
                )
            if (record.width, record.height) != image.size and record.width > 0:
                problems.append(
                    Problem(
                        "annotation size differs from image",
                        record.image_id,
                        f"annotation {record.width}x{record.height}, image {image.size[0]}x{image.size[1]}",
                    )
                )
            if decode:
                image.load()
    except (OSError, SyntaxError, ValueError) as error:
        kind = "truncated image" if "truncated" in str(error).lower() else "unreadable image"
        problems.append(Problem(kind, record.image_id, f"{path.name}: {error}", True))
    return problems, hashlib.blake2b(data, digest_size=16).hexdigest()


def check_dataset(
    dataset: DetectionDataset, images: bool = True, decode: bool = True, progress: bool = False
) -> ValidationReport:
    """Check every record's boxes and (with ``images``) its image file; ``decode`` fully decodes each image.

    Reading problems already attached to the dataset (unknown classes, unreadable annotations) are included.
    """
    problems = list(dataset.problems)
    digests: dict[str, list[str]] = {}
    records = dataset.records
    if progress:
        from tqdm import tqdm

        records = tqdm(records, desc=f"checking {dataset.name or 'dataset'}", unit="img")
    for record in records:
        problems += _check_boxes(record)
        if images:
            found, digest = _check_image(record, decode)
            problems += found
            if digest is not None:
                digests.setdefault(digest, []).append(record.image_id)
    for ids in digests.values():
        if len(ids) > 1:
            problems.append(Problem("duplicate image", ids[0], f"same bytes as {', '.join(ids[1:])}"))
    for problem in problems:
        problem.fatal = problem.fatal or problem.kind in FATAL_KINDS
    return ValidationReport(dataset.name, len(dataset), dataset.num_objects, problems)


def clean_for_training(
    dataset: DetectionDataset, report: ValidationReport | None = None
) -> tuple[DetectionDataset, str]:
    """Apply the training rule and return the cleaned dataset and a one-line summary.

    Rule: boxes are clipped to the image; boxes with a non-finite coordinate, or with zero width or height
    after clipping, are dropped; images the report found unreadable or truncated are skipped. Nothing else
    changes.
    """
    bad_images = set()
    if report is not None:
        bad_images = {
            p.image_id for p in report.problems if p.kind in ("unreadable image", "truncated image")
        }
    records, dropped, clipped = [], 0, 0
    for record in dataset.records:
        if record.image_id in bad_images:
            continue
        boxes = record.boxes
        keep = np.isfinite(boxes).all(axis=1)
        if record.width > 0 and record.height > 0:
            limit = np.array([record.width, record.height, record.width, record.height], np.float32)
            inside = np.clip(boxes, 0, limit)
            clipped += int((keep & (inside != boxes).any(axis=1)).sum())
            boxes = np.where(keep[:, None], inside, boxes)
        keep &= (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        dropped += int((~keep).sum())
        records.append(
            replace(
                record,
                boxes=boxes[keep],
                labels=record.labels[keep],
                difficult=record.difficult[keep],
                crowd=record.crowd[keep],
            )
        )
    skipped = len(dataset.records) - len(records)
    cleaned = DetectionDataset(
        records, dataset.class_names, dataset.name, dataset.problems, category_ids=dataset.category_ids
    )
    summary = (
        f"{dataset.name or 'dataset'}: {len(records)} images, {cleaned.num_objects} boxes; "
        f"dropped {dropped} bad boxes, clipped {clipped} boxes to the image, "
        f"skipped {skipped} unreadable images"
    )
    return cleaned, summary
