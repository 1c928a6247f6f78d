import numpy as np
import pytest
import torch

from multibox.data.augment import ValTransform
from multibox.data.formats import make_shapes, read_voc
from multibox.data.loader import Collate, DetectionDataSet, SeededSampler, make_loader, pad_labels


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
    images, labels = Collate(mean=(100, 50, 0), std=(2, 1, 1))(batch)
    assert images.dtype == torch.float32 and images.shape == (2, 3, 2, 2)
    assert images[0, :, 0, 0].tolist() == [50.0, 150.0, 200.0]
    assert labels.shape == (2, 1, 6) and labels[1, 0, 0] == -1
    raw, _ = Collate(normalize=False)(batch)
    assert raw.dtype == torch.uint8


def test_validation_items_are_the_resized_boxes():
    dataset = make_shapes(4, seed=0, image_size=(200, 320))
    items = DetectionDataSet(dataset, ValTransform(data_shape=(100, 100)))
    image, label = items[1]
    assert image.shape == (3, 100, 100) and image.dtype == torch.uint8
    record = dataset[1]
    expected = record.boxes / np.array([320, 200, 320, 200], np.float32)
    np.testing.assert_allclose(label[:, 1:5].numpy(), expected, atol=1e-6)
    assert label[:, 0].tolist() == record.labels.tolist() and (label[:, 5] == 0).all()


def test_crowd_boxes_are_left_out_of_training():
    dataset = make_shapes(1, seed=0, objects_per_image=(3, 3))
    dataset[0].crowd[:] = [False, True, False]
    _, label = DetectionDataSet(dataset, ValTransform(data_shape=(64, 64)))[0]
    assert len(label) == 2
    _, label = DetectionDataSet(dataset, ValTransform(data_shape=(64, 64)), keep_crowd=True)[0]
    assert len(label) == 3


def test_unreadable_image_is_skipped_not_fatal(tmp_path):
    dataset = make_shapes(3, seed=0)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg")
    dataset.records[0].image = broken
    items = DetectionDataSet(dataset, ValTransform(data_shape=(32, 32)))
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        image, label = items[0]
    assert image.shape == (3, 32, 32)  # the next record came instead


def test_training_loader_on_bccd_is_reproducible_with_any_worker_count(datasets_dir):
    dataset = read_voc(datasets_dir / "bccd", "test")
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
