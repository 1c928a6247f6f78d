"""Dataset checks that catch what breaks training (bad boxes, bad images), and the training cleaning rule."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from multibox.data.image_io import FORMAT_SUFFIXES, ImageDecodeError, open_image, to_rgb
from multibox.data.records import DetectionDataset, DetectionRecord, Problem
from multibox.errors import DataError

_EXIF_ORIENTATION = 0x0112

# Problems that break a training run that trusts its data (NaN losses, crashes): `data check` exits non-zero.
FATAL_KINDS = {
    "unreadable image",
    "truncated image",
    "image too large",
    "unreadable annotation",
    "degenerate box",
    "non-finite box",
    "bad list line",
    "bad record",
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
            lines.append("no problems found" if self.num_images else "no images found")
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
    """Header (and optionally full-decode) checks of one image file, or of an image stored in a container
    file (``record.image.read_bytes()``, a ``.rec`` record); returns problems and a content hash."""
    if callable(record.image) and not hasattr(record.image, "read_bytes"):
        return [], None  # generated
    if callable(record.image):
        name, suffix, read = record.image.name, None, record.image.read_bytes
    else:
        path = Path(record.image)
        name, suffix, read = path.name, path.suffix.lower(), path.read_bytes
    problems = []
    try:
        data = read()
    except ImageDecodeError as error:
        return [Problem(error.problem_kind, record.image_id, f"{name}: {error.reason}", True)], None
    except OSError as error:
        return [Problem("unreadable image", record.image_id, f"{name}: {error}", True)], None
    try:
        with open_image(data, name=name) as image:
            if suffix is not None and suffix not in FORMAT_SUFFIXES.get(image.format or "", (suffix,)):
                problems.append(
                    Problem(
                        "content does not match extension",
                        record.image_id,
                        f"{name} holds {image.format}",
                    )
                )
            if image.mode not in ("RGB",):
                problems.append(Problem("not an RGB image", record.image_id, f"{name}: mode {image.mode}"))
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
            if orientation not in (0, 1):
                problems.append(
                    Problem(
                        "EXIF-rotated image",
                        record.image_id,
                        f"{name}: orientation {orientation}; boxes refer to the stored pixels",
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
                to_rgb(image, name=name)  # the decode training does: truncated data, bad modes
    except ImageDecodeError as error:  # also an image over the pixel limit, from its header (--fast too)
        problems.append(Problem(error.problem_kind, record.image_id, f"{name}: {error.reason}", True))
    except (OSError, SyntaxError, ValueError) as error:  # broken EXIF data and the like
        kind = "truncated image" if "truncated" in str(error).lower() else "unreadable image"
        problems.append(Problem(kind, record.image_id, f"{name}: {error}", True))
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


# How the load summary names what reading left out: kind -> (verb, noun, plural noun, count per subject).
_LEFT_OUT = {
    "unreadable annotation": (
        "skipped",
        "image with an unreadable annotation",
        "images with an unreadable annotation",
        False,
    ),
    "bad list line": ("skipped", "list line that does not parse", "list lines that do not parse", False),
    "bad record": ("skipped", "record that cannot be read", "records that cannot be read", False),
    "unknown class": (
        "left out",
        "box of a class not in the class list",
        "boxes of classes not in the class list",
        True,
    ),
    "bad label line": ("left out", "label line that does not parse", "label lines that do not parse", False),
    "bad annotation": ("left out", "annotation that does not parse", "annotations that do not parse", False),
    "annotation without image": (
        "left out",
        "annotation without an image",
        "annotations without an image",
        False,
    ),
}
_NAMED = 5  # names listed per clause before "and N more"


def _listed(names: list[str], limit: int = _NAMED) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def reading_losses(dataset: DetectionDataset) -> list[str]:
    """What reading left out of ``dataset``, one clause per kind with exact counts and the files, lines or
    classes concerned, e.g. ``left out 258 boxes of classes not in the class list: RBC 250, WBC 8``; empty
    when nothing was left out."""
    by_kind: dict[str, list[str]] = {}
    for problem in dataset.problems:
        if problem.kind in _LEFT_OUT:
            by_kind.setdefault(problem.kind, []).append(problem.subject or problem.image_id)
    clauses = []
    for kind, (verb, one, many, per_subject) in _LEFT_OUT.items():
        subjects = by_kind.get(kind)
        if not subjects:
            continue
        if per_subject:
            counts = Counter(subjects)
            names = [f"{name} {n}" for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
            listed = _listed(names, 10)
        else:
            listed = _listed(subjects)
        clauses.append(f"{verb} {len(subjects)} {one if len(subjects) == 1 else many}: {listed}")
    return clauses


def _unreadable_image_ids(problems: list[Problem]) -> dict[str, str]:
    """Image id -> file name of every image found unreadable, truncated or over the pixel limit."""
    found = {}
    for p in problems:
        if p.kind in ("unreadable image", "truncated image", "image too large"):
            found.setdefault(p.image_id, p.subject or p.detail.split(":", 1)[0] or p.image_id)
    return found


def clean_for_training(
    dataset: DetectionDataset, report: ValidationReport | None = None
) -> tuple[DetectionDataset, str]:
    """Apply the training rule and return the cleaned dataset and a one-line summary.

    Rule: boxes are clipped to the image; boxes with a non-finite coordinate, or with zero width or height
    after clipping, are dropped; images the report found unreadable, truncated or too large are skipped. Nothing else
    changes. The summary counts all of that, images the reader could not open, and everything reading left
    out (``reading_losses``): boxes of classes not in the class list per class, images with an unreadable
    annotation, label or list lines that do not parse, annotations without an image, naming the files.
    """
    bad_images = _unreadable_image_ids(report.problems if report is not None else [])
    records, dropped, clipped, skipped_names = [], 0, 0, []
    for record in dataset.records:
        if record.image_id in bad_images:
            skipped_names.append(Path(record.image).name if not callable(record.image) else record.image_id)
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
    # images a reader (YOLO, .lst) already left out because it could not open them to read their size
    ids = {r.image_id for r in dataset.records}
    skipped_names += [name for key, name in _unreadable_image_ids(dataset.problems).items() if key not in ids]
    cleaned = DetectionDataset(
        records, dataset.class_names, dataset.name, dataset.problems, category_ids=dataset.category_ids
    )
    summary = (
        f"{dataset.name or 'dataset'}: {len(records)} images, {cleaned.num_objects} boxes; "
        f"dropped {dropped} bad boxes, clipped {clipped} boxes to the image, "
        f"skipped {len(skipped_names)} unreadable images"
    )
    if skipped_names:
        summary += f": {_listed(skipped_names)}"
    return cleaned, "; ".join([summary, *reading_losses(dataset)])


def require_images(dataset: DetectionDataset, what: str, report: ValidationReport | None = None) -> None:
    """Raise ``DataError`` when ``dataset`` has no usable image: none read, or all found unreadable by
    ``report`` (``check_dataset``). Call it on the set to train on, before or after ``clean_for_training``.

    ``what`` names the set in the message, e.g. ``"train_data ../data/VOC2007 (split trainval)"``.
    """
    problems = list(dataset.problems)
    if report is not None:
        known = {id(p) for p in problems}
        problems += [p for p in report.problems if id(p) not in known]
    bad_images = _unreadable_image_ids(problems)
    if any(r.image_id not in bad_images for r in dataset.records):
        return
    annotations = sum(p.kind in ("unreadable annotation", "bad list line", "bad record") for p in problems)
    images = len(bad_images)
    raise DataError(
        f"no usable images in {what} ({annotations} unreadable annotation{'s' * (annotations != 1)}, "
        f"{images} unreadable image{'s' * (images != 1)}): check the path and the split, and fix the files "
        "that `multibox data check` names"
    )
