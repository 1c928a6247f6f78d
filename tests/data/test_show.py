"""Grids of ground truth, augmented images and training batches: sizes, letterboxing, box pixels, colours."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from multibox.data.augment import TrainAugmentation
from multibox.data.formats import make_shapes
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.show import (
    BACKGROUND,
    augmented_grid,
    batch_grid,
    denormalise,
    ground_truth_grid,
    image_grid,
)
from multibox.viz import class_colour

NAMES = ["cat", "dog", "bird"]


def _one_box_dataset(width=200, height=100, box=(20, 10, 120, 60), label=2) -> DetectionDataset:
    record = DetectionRecord(
        "only",
        lambda: Image.new("RGB", (width, height), (0, 0, 0)),
        width,
        height,
        boxes=[box],
        labels=[label],
    )
    return DetectionDataset([record], NAMES, name="one")


def _mask(grid: Image.Image, colour) -> np.ndarray:
    return np.all(np.asarray(grid) == np.array(colour, np.uint8), axis=-1)


def test_image_grid_letterboxes_tiles_into_equal_cells():
    tiles = [Image.new("RGB", size, (255, 0, 0)) for size in [(40, 20), (20, 30), (10, 10), (40, 30), (5, 5)]]
    grid = image_grid(tiles, columns=2)
    assert grid.size == (2 * 40, 3 * 30)  # cell = the largest width and height; 5 tiles -> 3 rows
    pixels = np.asarray(grid)
    # tile 0 (40x20) centred in cell (0, 0): rows 5..24 red, rows 0..4 the letterbox grey
    assert (pixels[5:25, 0:40] == [255, 0, 0]).all() and (pixels[0:5, 0:40] == BACKGROUND).all()
    # tile 2 (10x10) in cell (row 1, col 0): x 15..24, y 30 + 10..19
    assert (pixels[40:50, 15:25] == [255, 0, 0]).all() and (pixels[30:40, 0:40] == BACKGROUND).all()
    # the last row's second cell is empty
    assert (pixels[60:90, 40:80] == BACKGROUND).all()
    assert image_grid(tiles[:1], columns=4).size == (40, 20)  # never wider than the images
    small = image_grid(tiles, columns=3, cell=(20, 20))
    assert small.size == (60, 40)  # larger tiles scaled down into the given cell
    with pytest.raises(ValueError):
        image_grid([], 4)


def test_ground_truth_grid_draws_the_box_in_its_class_colour_at_the_scaled_place():
    grid = ground_truth_grid(_one_box_dataset(), count=16, columns=4, cell=256)
    assert grid.size == (256, 256)  # one image: one cell
    # 200x100 fitted to 256: scale 1.28 -> 256x128, centred vertically (top 64); box -> (25.6, 76.8, 153.6, 140.8)
    mask = _mask(grid, class_colour(2))
    mid_y = round((12.8 + 76.8) / 2) + 64
    mid_x = round((25.6 + 153.6) / 2)
    assert mask[mid_y, 24:29].any() and mask[mid_y, 151:156].any()  # left and right edges
    assert mask[139:143, mid_x].any()  # the bottom edge
    assert not mask[mid_y, 30:150].any()  # the inside is the image (black)
    ys, xs = np.nonzero(mask)  # nowhere else: only the outline and its name tag (above the box's top)
    assert xs.min() >= 24 and xs.max() <= 156 and ys.min() >= 64 and ys.max() <= 143
    assert not _mask(grid, class_colour(0)).any() and not _mask(grid, class_colour(1)).any()
    assert (np.asarray(grid)[:64] == BACKGROUND).all() and (np.asarray(grid)[193:] == BACKGROUND).all()


def test_ground_truth_grid_of_many_images_is_columns_by_rows_cells():
    dataset = make_shapes(num_images=7, seed=3)
    grid = ground_truth_grid(dataset, count=6, columns=4, cell=64)
    assert grid.size == (4 * 64, 2 * 64)
    assert ground_truth_grid(dataset, count=100, columns=3, cell=32).size == (3 * 32, 3 * 32)  # all 7
    again = ground_truth_grid(dataset, count=6, columns=4, cell=64)
    assert np.array_equal(np.asarray(grid), np.asarray(again))  # the seed picks the same images


def test_boxes_follow_the_declared_size_when_the_image_differs():
    record = DetectionRecord(
        "half",
        lambda: Image.new("RGB", (100, 50), (0, 0, 0)),
        200,
        100,
        boxes=[(20, 10, 120, 60)],
        labels=[2],
    )
    grid = ground_truth_grid(DetectionDataset([record], NAMES), cell=256)
    expected = ground_truth_grid(_one_box_dataset(), cell=256)  # the same place once fitted to the cell
    assert np.array_equal(_mask(grid, class_colour(2)), _mask(expected, class_colour(2)))


def test_augmented_grid_draws_the_augmented_boxes_on_the_augmented_image():
    flip_only = TrainAugmentation(
        data_shape=(64, 64),
        colour=None,
        mirror_prob=1.0,
        expand_prob=0.0,
        samplers=(),
        interpolations=("nearest",),
    )
    grid = augmented_grid(_one_box_dataset(), flip_only, columns=4)
    assert grid.size == (64, 64)
    # box (0.1, 0.1, 0.6, 0.6) mirrored -> (0.4, 0.1, 0.9, 0.6) of 64 px: x 25.6..57.6, y 6.4..38.4
    mask = _mask(grid, class_colour(2))
    assert mask[22, 24:28].any() and mask[22, 55:59].any()
    assert not mask[22, 0:20].any()  # nothing where the unmirrored box's left edge (12.8) was
    assert not mask[45:, :].any()


def test_augmented_grid_with_the_training_recipe_is_reproducible():
    dataset = make_shapes(num_images=5, seed=1)
    augmentation = TrainAugmentation(data_shape=(96, 96))
    grid = augmented_grid(dataset, augmentation, count=4, columns=2, seed=5)
    assert grid.size == (2 * 96, 2 * 96)
    assert np.array_equal(np.asarray(grid), np.asarray(augmented_grid(dataset, augmentation, 4, 2, seed=5)))
    assert not np.array_equal(
        np.asarray(grid), np.asarray(augmented_grid(dataset, augmentation, 4, 2, seed=6))
    )


def _batch(seed=0):
    pixels = torch.from_numpy(np.random.default_rng(seed).integers(0, 256, (2, 3, 40, 60), dtype=np.uint8))
    labels = torch.full((2, 2, 6), -1.0)
    labels[1, 0] = torch.tensor([1.0, 0.25, 0.25, 0.75, 0.75, 0.0])
    return pixels, labels


def test_denormalise_round_trips_pixel_and_unit_normalisations():
    pixels, _ = _batch()
    mean, std = (123.0, 117.0, 104.0), (58.4, 57.1, 57.4)
    normalised = (pixels.float() - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    expected = pixels.permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(denormalise(normalised, mean, std).astype(int) - expected).max() <= 1
    unit_mean, unit_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    unit = (pixels.float() / 255 - torch.tensor(unit_mean).view(1, 3, 1, 1)) / torch.tensor(unit_std).view(
        1, 3, 1, 1
    )
    assert np.abs(denormalise(unit, unit_mean, unit_std, max_value=1.0).astype(int) - expected).max() <= 1
    assert np.array_equal(denormalise(pixels), expected)  # uint8 batches are the pixels


def test_batch_grid_restores_pixels_and_draws_boxes_at_the_right_place():
    pixels, labels = _batch()
    mean, std = (123.0, 117.0, 104.0), (1.0, 1.0, 1.0)
    normalised = pixels.float() - torch.tensor(mean).view(1, 3, 1, 1)
    grid = batch_grid(normalised, labels, NAMES, mean, std, columns=4)
    assert grid.size == (2 * 60, 40)
    array = np.asarray(grid).astype(int)
    original = pixels.permute(0, 2, 3, 1).numpy().astype(int)
    assert np.abs(array[:, :60] - original[0]).max() <= 1  # image 0 has only padding rows: untouched
    # image 1 (x offset 60): box (15, 10, 45, 30), outline 2 px inward, in class 1's colour
    colour = np.array(class_colour(1))
    assert (array[20, 60 + 15] == colour).all() and (array[20, 60 + 16] == colour).all()
    assert (array[20, 60 + 44] == colour).all() and (array[29, 60 + 30] == colour).all()
    # inside the box, below its name tag (drawn inside: no room above), the image is untouched
    assert np.abs(array[25:28, 60 + 18 : 60 + 42] - original[1, 25:28, 18:42]).max() <= 1
    assert np.abs(array[32:, 60:] - original[1, 32:]).max() <= 1  # below the box untouched


def test_an_unreadable_image_gets_a_black_tile_and_the_others_still_show(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    records = [
        DetectionRecord("broken", broken, 50, 50, boxes=[(1, 1, 20, 20)], labels=[0]),
        *_one_box_dataset().records,
    ]
    grid = ground_truth_grid(DetectionDataset(records, NAMES), seed=None, columns=2, cell=64)
    assert grid.size == (128, 64)
    pixels = np.asarray(grid)
    assert (pixels[40:, :64] == 0).all()  # the black tile, its name written at the top
    assert not _mask(grid, class_colour(0)).any() and _mask(grid, class_colour(2))[:, 64:].any()
