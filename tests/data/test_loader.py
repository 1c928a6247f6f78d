import numpy as np
import pytest
import torch
from PIL import Image

from multibox.data.augment import ValTransform
from multibox.data.formats import make_shapes, read_voc
from multibox.data.image_io import ImageDecodeError
from multibox.data.loader import (
    Collate,
    LoaderDataset,
    SeededSampler,
    SkippedImage,
    make_loader,
    pad_labels,
)
from multibox.data.records import DetectionDataset, DetectionRecord
from tests.image_helpers import noise, write_truncated_jpeg


def test_pad_labels_hand_case():
    labels = [torch.tensor([[1.0, 0.1, 0.2, 0.3, 0.4, 0.0]]), torch.zeros(0, 6)]
    out = pad_labels(labels)
    assert out.shape == (2, 1, 6)
    assert torch.equal(out[0], labels[0]) and out[1].tolist() == [[-1.0] * 6]
    assert pad_labels(labels, max_objects=3).shape == (2, 3, 6)


def test_seeded_sampler_reproducible_and_partitioned():
    sampler = SeededSampler(10, seed=4)
    sampler.set_epoch(2)
    first = list(sampler)
    assert first == list(sampler)  # same (seed, epoch) -> same order and per-sample seeds
    assert sorted(i for i, _ in first) == list(range(10))
    sampler.set_epoch(3)
    assert [i for i, _ in sampler] != [i for i, _ in first]
    ranks = [SeededSampler(10, seed=4, num_replicas=3, rank=r) for r in range(3)]
    for r in ranks:
        r.set_epoch(2)
    taken = [i for r in ranks for i, _ in r]
    assert len(taken) == 12 and set(taken) == set(range(10))  # padded by wrapping, every sample seen
    assert all(len(r) == 4 for r in ranks)
    assert [i for i, _ in SeededSampler(5, shuffle=False)] == [0, 1, 2, 3, 4]


def test_collate_normalises_and_pads():
    image = torch.full((3, 2, 2), 200, dtype=torch.uint8)
    batch = [(image, torch.tensor([[0.0, 0.1, 0.1, 0.5, 0.5, 0.0]])), (image, torch.zeros(0, 6))]
    images, labels = Collate(mean=(100, 50, 0), std=(2, 1, 1), normalize=True)(batch)
    assert images.dtype == torch.float32 and images.shape == (2, 3, 2, 2)
    assert images[0, :, 0, 0].tolist() == [50.0, 150.0, 200.0]
    assert labels.shape == (2, 1, 6) and labels[1, 0, 0] == -1
    raw, _ = Collate()(batch)  # uint8 by default: the model normalises on the device
    assert raw.dtype == torch.uint8


def test_validation_items_are_the_resized_boxes():
    dataset = make_shapes(4, seed=0, image_size=(200, 320))
    items = LoaderDataset(dataset, ValTransform(data_shape=(100, 100)))
    image, label = items[1]
    assert image.shape == (3, 100, 100) and image.dtype == torch.uint8
    record = dataset[1]
    expected = record.boxes / np.array([320, 200, 320, 200], np.float32)
    np.testing.assert_allclose(label[:, 1:5].numpy(), expected, atol=1e-6)
    assert label[:, 0].tolist() == record.labels.tolist() and (label[:, 5] == 0).all()


def test_crowd_boxes_are_left_out_of_training():
    dataset = make_shapes(1, seed=0, objects_per_image=(3, 3))
    dataset[0].crowd[:] = [False, True, False]
    _, label = LoaderDataset(dataset, ValTransform(data_shape=(64, 64)))[0]
    assert len(label) == 2
    _, label = LoaderDataset(dataset, ValTransform(data_shape=(64, 64)), keep_crowd=True)[0]
    assert len(label) == 3


def test_unreadable_image_raises_and_is_never_replaced(tmp_path):
    dataset = make_shapes(3, seed=0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    dataset.records[0].image = broken
    with pytest.raises(ImageDecodeError, match="broken.jpg"):
        LoaderDataset(dataset, ValTransform(data_shape=(32, 32)))[0]
    skipped = LoaderDataset(dataset, ValTransform(data_shape=(32, 32)), skip_unreadable=True)[0]
    assert isinstance(skipped, SkippedImage) and skipped.index == 0
    assert skipped.image_id == dataset.records[0].image_id and "not an image" in skipped.reason


def _files_dataset(root, count=7, bad=(3,)):
    """``count`` JPEG files, each with its own boxes and labels; the images at ``bad`` truncated."""
    records = []
    for i in range(count):
        path = root / f"img{i}.jpg"
        pixels = noise(60 + 4 * i, 80, seed=i)
        if i in bad:
            write_truncated_jpeg(path, pixels)
        else:
            Image.fromarray(pixels).save(path, quality=90)
        boxes = [[2 + i, 3, 40 + i, 30 + i], [5, 6 + i, 70, 50]]
        records.append(DetectionRecord(f"img{i}", path, 80, 60 + 4 * i, boxes, [i % 3, (i + 1) % 3]))
    return DetectionDataset(records, ["a", "b", "c"])


def _expected_label(record):
    scale = np.array([record.width, record.height] * 2, np.float32)
    return np.concatenate([record.labels[:, None], record.boxes / scale, np.zeros((2, 1))], axis=1)


@pytest.mark.parametrize("workers", [0, 2])
def test_loader_drops_a_truncated_image_and_names_it(tmp_path, capfd, workers):
    dataset = _files_dataset(tmp_path)
    loader = make_loader(
        dataset, batch_size=3, train=False, data_shape=32, num_workers=workers, return_indices=True
    )
    seen = []
    for images, labels, indices in loader:
        assert indices.dtype == torch.int64 and len(images) == len(labels) == len(indices)
        for label, index in zip(labels, indices.tolist(), strict=True):
            record = dataset.records[index]
            np.testing.assert_allclose(label[label[:, 0] >= 0].numpy(), _expected_label(record), atol=1e-6)
            seen.append(index)
    assert seen == [0, 1, 2, 4, 5, 6]  # every other image exactly once, with its own labels
    lines = [line for line in capfd.readouterr().err.splitlines() if "skipped" in line]
    assert len(lines) == 1 and lines[0].startswith("skipped unreadable image img3: image file is truncated")


@pytest.mark.filterwarnings("ignore:.*pin_memory.*:UserWarning")
@pytest.mark.parametrize("workers", [0, 2])
def test_training_loader_with_workers_and_pinned_memory_skips_bad_images(tmp_path, capfd, workers):
    dataset = _files_dataset(tmp_path, count=8, bad=(1, 6))
    loader = make_loader(
        dataset,
        batch_size=4,
        train=True,
        data_shape=48,
        num_workers=workers,
        seed=3,
        pin_memory=True,
        return_indices=True,
    )
    loader.sampler.set_epoch(0)
    order = [index for index, _ in loader.sampler]
    batches = list(loader)
    assert [len(b[0]) for b in batches] == [4 - sum(i in (1, 6) for i in order[k : k + 4]) for k in (0, 4)]
    got = [i for _, _, indices in batches for i in indices.tolist()]
    assert got == [i for i in order if i not in (1, 6)]
    for images, labels, indices in batches:
        assert images.shape[1:] == (3, 48, 48) and images.dtype == torch.uint8
        for label, index in zip(labels, indices.tolist(), strict=True):
            classes = sorted(label[label[:, 0] >= 0, 0].long().tolist())
            assert set(classes) <= set(dataset.records[index].labels.tolist())  # a crop may drop some
    plain = list(make_loader(dataset, batch_size=4, train=True, data_shape=48, num_workers=workers, seed=3))
    assert all(len(batch) == 2 for batch in plain) and sum(len(b[0]) for b in plain) == 6
    err = capfd.readouterr().err
    assert (
        err.count("skipped unreadable image img1:") == 2 and err.count("skipped unreadable image img6:") == 2
    )


def test_a_batch_of_only_bad_images_is_empty(tmp_path, capfd):
    dataset = _files_dataset(tmp_path, count=3, bad=(0, 1, 2))
    ((images, labels, indices),) = make_loader(
        dataset, batch_size=3, train=False, data_shape=(20, 30), num_workers=0, return_indices=True
    )
    assert images.shape == (0, 3, 20, 30) and images.dtype == torch.uint8
    assert labels.shape == (0, 1, 6) and indices.shape == (0,) and indices.dtype == torch.int64
    assert capfd.readouterr().err.count("skipped unreadable image") == 3


def test_training_loader_on_bccd_is_reproducible_with_any_worker_count(bccd_subset):
    dataset = read_voc(bccd_subset, "test")
    dataset.records = dataset.records[:6]
    batches = []
    for workers in (0, 2):
        loader = make_loader(dataset, batch_size=3, train=True, data_shape=96, num_workers=workers, seed=7)
        loader.sampler.set_epoch(1)
        batches.append(list(loader))
    for (images_a, labels_a), (images_b, labels_b) in zip(*batches, strict=True):
        assert images_a.shape == (3, 3, 96, 96) and labels_a.shape[2] == 6
        assert torch.equal(images_a, images_b) and torch.equal(labels_a, labels_b)
    valid = labels_a[labels_a[..., 0] >= 0]
    assert bool((valid[:, 1:5] >= 0).all() and (valid[:, 1:5] <= 1).all())
    assert bool((valid[:, 3] > valid[:, 1]).all() and (valid[:, 4] > valid[:, 2]).all())
