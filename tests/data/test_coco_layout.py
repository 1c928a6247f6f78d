"""The standard COCO layout, ``<root>/annotations/instances_<set>.json`` beside ``<root>/<set>/``, found from the
root and a split name, for training and evaluation alike."""

import dataclasses

import numpy as np
import pytest

from multibox.data import load_dataset
from multibox.data.formats import detect_format, write_coco
from multibox.engine.config import load_config
from multibox.engine.train_setup import load_datasets
from multibox.errors import ConfigError


def _subset(bccd_subset, split: str, count: int, rename=None):
    dataset = load_dataset(str(bccd_subset), split)
    records = dataset.records[:count]
    if rename is not None:
        records = [dataclasses.replace(r, image_id=rename(i)) for i, r in enumerate(records)]
    return dataclasses.replace(dataset, records=records)


def _coco_root(root, bccd_subset, sets):
    """``root/annotations/instances_<set>.json`` and ``root/<folder>/`` for each ``set: (split, count, folder)``."""
    written = {}
    for name, (split, count, folder, rename) in sets.items():
        dataset = _subset(bccd_subset, split, count, rename)
        write_coco(dataset, root / "annotations" / f"instances_{name}.json", root / folder)
        written[name] = dataset
    return written


@pytest.fixture(scope="module")
def coco_2017(bccd_subset, tmp_path_factory):
    root = tmp_path_factory.mktemp("coco")
    sets = {"train2017": ("train", 4, "train2017", None), "val2017": ("test", 3, "val2017", None)}
    return root, _coco_root(root, bccd_subset, sets)


def test_a_root_and_a_split_name_find_the_json_and_the_image_folder(coco_2017):
    root, written = coco_2017
    assert detect_format(root) == "coco"
    val = load_dataset(root, "val2017")
    assert [r.image_id for r in val.records] == [r.image_id for r in written["val2017"].records]
    for record, source in zip(val.records, written["val2017"].records, strict=True):
        assert record.image.parent == root / "val2017" and record.image.is_file()
        np.testing.assert_allclose(record.boxes, source.boxes)
        assert [val.class_names[i] for i in record.labels] == [
            written["val2017"].class_names[i] for i in source.labels
        ]


def test_training_settings_name_the_split_of_a_root(coco_2017):
    root, _ = coco_2017
    config = load_config(None, [f"train_data={root}", "train_split=train2017", "val_split=val2017"])
    train_set, val_set = load_datasets(config, rank=0)
    assert len(train_set) == 4 and len(val_set) == 3
    assert all(r.image.parent == root / "train2017" for r in train_set.records)


def test_a_root_without_a_split_lists_its_splits_in_one_line(coco_2017):
    root, _ = coco_2017
    with pytest.raises(ConfigError, match="holds the COCO splits train2017, val2017: name one") as error:
        load_dataset(root)
    assert "\n" not in str(error.value)
    with pytest.raises(FileNotFoundError, match=r"no split 'val' in .*\(its splits: train2017, val2017\)"):
        load_dataset(root, "val")


def test_a_root_with_one_split_needs_no_name_and_2014_sets_find_their_image_folder(bccd_subset, tmp_path):
    def coco_name(i):
        return f"COCO_val2014_{i + 1:012d}"

    sets = {"valminusminival2014": ("train", 2, "val2014", coco_name)}  # its images live in val2014/
    written = _coco_root(tmp_path, bccd_subset, sets)
    dataset = load_dataset(tmp_path)
    assert [r.image_id for r in dataset.records] == [coco_name(0), coco_name(1)]
    assert all(r.image.parent == tmp_path / "val2014" and r.image.is_file() for r in dataset.records)
    np.testing.assert_allclose(dataset.records[1].boxes, written["valminusminival2014"].records[1].boxes)
