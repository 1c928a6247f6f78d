"""Several datasets as one: classes merged by name, labels remapped, image ids unique; lists in the config and a
short training run on two sources."""

import dataclasses

import numpy as np
import pytest
import yaml

from multibox.checkpoint import read_checkpoint
from multibox.data import DetectionDataset, DetectionRecord, load_dataset
from multibox.data.concat import concat_datasets, load_sources, merged_class_names
from multibox.data.formats import write_voc
from multibox.data.records import Problem
from multibox.engine.config import TrainConfig, load_config
from multibox.engine.train import train
from multibox.engine.train_setup import load_validation
from multibox.errors import ConfigError, DataError
from tests.engine.test_train import FAST


def _record(image_id: str, labels: list[int]) -> DetectionRecord:
    boxes = [[10 * i, 10, 10 * i + 5, 20] for i in range(len(labels))]
    return DetectionRecord(image_id, lambda: None, 100, 100, np.array(boxes, np.float32), labels)


def test_classes_merge_by_name_in_first_seen_order_and_labels_follow_their_names():
    first = DetectionDataset([_record("a1", [0, 1, 1])], ["cat", "dog"], name="first")
    second = DetectionDataset([_record("b1", [2, 0, 1])], ["dog", "bird", "cat"], name="second")
    joined = concat_datasets([first, second])
    assert joined.class_names == ["cat", "dog", "bird"] == merged_class_names([first, second])
    assert joined.records[0].labels.tolist() == [0, 1, 1]  # the first source keeps its ids
    assert joined.records[1].labels.tolist() == [0, 1, 2]  # cat, dog, bird in the merged list
    for source, record in ((first, 0), (second, 1)):
        names = [joined.class_names[i] for i in joined.records[record].labels]
        assert names == [source.class_names[i] for i in source.records[0].labels]
    np.testing.assert_array_equal(joined.records[1].boxes, second.records[0].boxes)
    assert concat_datasets([first]) is first


def test_colliding_image_ids_are_prefixed_by_source_and_their_problems_follow():
    first = DetectionDataset([_record("0001", [0]), _record("only_a", [0])], ["cat"], name="VOC2007/trainval")
    broken = Problem("unreadable image", "0001", "0001.jpg: truncated", True, subject="0001.jpg")
    second = DetectionDataset([_record("0001", [0]), _record("only_b", [0])], ["cat"], "VOC2012", [broken])
    joined = concat_datasets([first, second])
    ids = [r.image_id for r in joined.records]
    assert ids == ["VOC2007-trainval_0001", "only_a", "VOC2012_0001", "only_b"]
    assert [p.image_id for p in joined.problems] == [
        "VOC2012_0001"
    ]  # the second source's image, not the first's
    twice = concat_datasets([first, first])  # one name twice: numbered by position
    assert [r.image_id for r in twice.records][::2] == ["VOC2007-trainval-1_0001", "VOC2007-trainval-2_0001"]


def test_category_ids_survive_only_when_the_sources_agree():
    a = DetectionDataset([_record("1", [0])], ["cat", "dog"], category_ids=[3, 7])
    b = DetectionDataset([_record("2", [0])], ["dog", "bird"], category_ids=[7, 9])
    assert concat_datasets([a, b]).category_ids == [3, 7, 9]
    c = DetectionDataset([_record("3", [0])], ["dog"], category_ids=[8])
    assert concat_datasets([a, c]).category_ids is None
    assert concat_datasets([a, DetectionDataset([_record("4", [0])], ["dog"])]).category_ids is None


def test_a_label_outside_its_class_list_is_one_line():
    bad = DetectionDataset([_record("x", [0, 5])], ["cat"], name="bad")
    with pytest.raises(DataError, match="bad: image x has class ids outside its 1 classes") as error:
        concat_datasets([DetectionDataset([], ["cat"]), bad])
    assert "\n" not in str(error.value)


def test_data_settings_take_one_source_or_a_list(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("train_data: [../VOC2007, ../VOC2012]\nval_data: ../VOC2007\n")
    from_file = load_config(path)
    assert from_file.train_data == ["../VOC2007", "../VOC2012"] and from_file.val_data == "../VOC2007"
    from_line = load_config(None, ["train_data=[../VOC2007, ../VOC2012]", "val_data=[a]"])
    assert from_line.train_data == ["../VOC2007", "../VOC2012"] and from_line.val_data == ["a"]
    assert load_config(None, ["train_data=2007", "val_data=null"]).train_data == "2007"  # text stays text
    for override, message in (
        ("train_data=[]", "train_data expects a dataset or a list of datasets .*an empty list"),
        (
            "train_data=[a, {b: 1}]",
            r"train_data expects a dataset or a list of datasets \(text\), got \{'b': 1\}",
        ),
        ("train_data=null", "train_data needs a value"),
    ):
        with pytest.raises(ConfigError, match=message):
            load_config(None, [override])


@pytest.fixture(scope="module")
def two_sources(bccd_subset, tmp_path_factory):
    """The first 4 bccd train images written twice as VOC, with two class orders (labels.txt)."""
    root = tmp_path_factory.mktemp("two")
    names = load_dataset(str(bccd_subset), "train").class_names
    folders = []
    for folder, order in (("a", names), ("b", names[::-1])):
        dataset = load_dataset(str(bccd_subset), "train", class_names=order)
        write_voc(dataclasses.replace(dataset, records=dataset.records[:4]), root / folder, "train")
        folders.append(root / folder)
    return folders


def test_two_voc_folders_of_other_class_orders_join_by_name(two_sources, bccd_subset):
    a, b = two_sources
    assert (b / "labels.txt").read_text().split() == ["WBC", "RBC", "Platelets"]  # the writer kept b's order
    joined = load_sources([str(a), str(b)], "train")
    assert joined.class_names == ["Platelets", "RBC", "WBC"] and len(joined) == 8
    truth = {r.image_id: r for r in load_dataset(str(bccd_subset), "train").records}
    original = load_dataset(str(bccd_subset), "train").class_names
    for record in joined.records:
        prefix, image_id = record.image_id.split("_", 1)
        assert prefix in ("a-train", "b-train")
        source = truth[image_id]
        np.testing.assert_array_equal(record.boxes, source.boxes)
        assert [joined.class_names[i] for i in record.labels] == [original[i] for i in source.labels]


def test_training_on_two_sources_keeps_the_merged_classes(two_sources, tmp_path):
    a, b = map(str, two_sources)
    config = TrainConfig(
        **{**FAST, "train_data": [a, b], "val_data": [b], "batch_size": 4},  # 8 images: 2 steps
        train_split="train",
        val_split="train",
        epochs=1,
        max_iterations=2,
        precise_bn_batches=0,
        out_dir=str(tmp_path),
    )
    result = train(config)
    assert result.class_names == ["Platelets", "RBC", "WBC"]
    assert read_checkpoint(result.checkpoint)["class_names"] == ["Platelets", "RBC", "WBC"]
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert written["train_data"] == [a, b] and written["val_data"] == [b]
    assert result.history[0]["step"] == 2 and result.history[0]["mAP_voc07"] is not None


@pytest.fixture(scope="module")
def one_with_val(bccd_subset, tmp_path_factory):
    """3 bccd train images written as a VOC folder whose only split is ``val``."""
    dataset = load_dataset(str(bccd_subset), "train")
    root = tmp_path_factory.mktemp("with_val") / "c"
    write_voc(dataclasses.replace(dataset, records=dataset.records[4:7]), root, "val")
    return root


def test_validation_comes_from_the_sources_that_have_the_split(two_sources, one_with_val, capsys):
    a, c = str(two_sources[0]), str(one_with_val)
    config = TrainConfig(train_data=[a, c], val_split="val")
    val_set = load_validation(config, ["Platelets", "RBC", "WBC"], rank=0)
    assert len(val_set) == 3 and val_set.class_names == ["Platelets", "RBC", "WBC"]
    assert f"no validation data in {a}" in capsys.readouterr().err
    assert load_validation(config.replace(train_data=[a]), ["Platelets", "RBC", "WBC"], rank=0) is None
    assert "no source has validation data; training without evaluation" in capsys.readouterr().err


def test_val_data_given_without_the_split_is_one_line(two_sources, one_with_val):
    config = TrainConfig(train_data=str(one_with_val), val_data=[str(one_with_val), str(two_sources[0])])
    with pytest.raises(ConfigError, match=r"^val_data: .*give val_split=NAME of a split it has"):
        load_validation(config, ["Platelets", "RBC", "WBC"], rank=0)
