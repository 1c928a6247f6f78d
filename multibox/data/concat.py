"""Several datasets as one (the original's ``ConcatDB``, e.g. VOC2007 + VOC2012 trainval): classes merged by
name, each source's labels remapped to the merged list, image ids kept unique."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from multibox.data.records import DetectionDataset
from multibox.errors import DataError

Sources = str | Path | Sequence[str | Path]


def as_source_list(sources: Sources) -> list[str]:
    """``sources`` (one source, or a list of them) as a list of text."""
    return [str(sources)] if isinstance(sources, str | Path) else [str(s) for s in sources]


def load_sources(
    sources: Sources,
    split: str | None = None,
    class_names: Sequence[str] | str | Path | None = None,
) -> DetectionDataset:
    """Every source read with ``load_dataset(source, split, class_names=class_names)`` (the one ``split`` for
    all of them), joined by :func:`concat_datasets`; one source is returned as read."""
    from multibox.data.formats import load_dataset

    datasets = [load_dataset(s, split, class_names=class_names) for s in as_source_list(sources)]
    return concat_datasets(datasets)


def merged_class_names(datasets: Sequence[DetectionDataset]) -> list[str]:
    """The union of the datasets' class names in first-seen order: the first's in its order, then each later
    dataset's new names in theirs."""
    return list(dict.fromkeys(name for dataset in datasets for name in dataset.class_names))


def concat_datasets(datasets: Sequence[DetectionDataset]) -> DetectionDataset:
    """One dataset holding every record of ``datasets``, in order.

    Classes are :func:`merged_class_names`; each record's labels are remapped from its dataset's list to the
    merged one by name (boxes, difficult and crowd flags unchanged). An image id found in more than one
    source (its records or its problems) is prefixed in each of them by that source's label
    (``<name>_<id>``, the name made unique: ``VOC2007-trainval_000005``); ids found once stay as they were.
    Category ids are kept when every source has them and they agree by name; otherwise ``None``.
    A single dataset is returned as it is.
    """
    if not datasets:
        raise ValueError("concat_datasets needs at least one dataset")
    if len(datasets) == 1:
        return datasets[0]
    names = merged_class_names(datasets)
    index = {name: i for i, name in enumerate(names)}
    labels = _source_labels(datasets)
    shared = _shared_ids(datasets)
    records, problems, sources = [], [], []
    for dataset, label in zip(datasets, labels, strict=True):
        remap = np.array([index[name] for name in dataset.class_names], np.int64)

        def renamed(image_id: str, label: str = label) -> str:
            return f"{label}_{image_id}" if image_id in shared else image_id

        for record in dataset.records:
            records.append(
                dataclasses.replace(
                    record, image_id=renamed(record.image_id), labels=_remapped(record, remap, dataset)
                )
            )
        problems += [dataclasses.replace(p, image_id=renamed(p.image_id)) for p in dataset.problems]
        sources.append({renamed(r.image_id) for r in dataset.records})
    _require_unique_ids(sources)
    return DetectionDataset(records, names, "+".join(labels), problems, _merged_category_ids(datasets, names))


def _remapped(record, remap: np.ndarray, dataset: DetectionDataset) -> np.ndarray:
    """The record's ``(K,)`` labels in the merged class list."""
    if len(record.labels) and (record.labels.min() < 0 or record.labels.max() >= len(remap)):
        raise DataError(
            f"{dataset.name}: image {record.image_id} has class ids outside its {len(remap)} classes; "
            "fix the dataset's labels or its class list"
        )
    return remap[record.labels]


def _source_labels(datasets: Sequence[DetectionDataset]) -> list[str]:
    """A short, unique, file-name-safe label per dataset: its name, numbered by position when names repeat."""
    plain = [re.sub(r"[^A-Za-z0-9.-]+", "-", d.name).strip("-") or "source" for d in datasets]
    counts = Counter(plain)
    return [name if counts[name] == 1 else f"{name}-{k + 1}" for k, name in enumerate(plain)]


def _shared_ids(datasets: Sequence[DetectionDataset]) -> set[str]:
    """The image ids (of records and problems) that occur in more than one dataset."""
    seen = Counter()
    for dataset in datasets:
        seen.update({r.image_id for r in dataset.records} | {p.image_id for p in dataset.problems})
    return {image_id for image_id, count in seen.items() if count > 1}


def _require_unique_ids(ids_by_source: list[set[str]]) -> None:
    """Refuse an id that, prefixed or not, still names images of two sources."""
    seen = Counter(image_id for ids in ids_by_source for image_id in ids)
    twice = [image_id for image_id, count in seen.items() if count > 1]
    if twice:
        raise DataError(
            f"image id {twice[0]!r} occurs twice in the joined datasets even after prefixing by source; "
            "rename that image in one of the sources"
        )


def _merged_category_ids(datasets: Sequence[DetectionDataset], names: list[str]) -> list[int] | None:
    """Each merged class's category id when every dataset has ids and no two disagree, else ``None``."""
    if any(d.category_ids is None for d in datasets):
        return None
    ids: dict[str, int] = {}
    for dataset in datasets:
        for name, category in zip(dataset.class_names, dataset.category_ids, strict=True):
            if ids.setdefault(name, category) != category:
                return None
    merged = [ids[name] for name in names]
    return merged if len(set(merged)) == len(merged) else None
