"""The SSD training augmentation: hand-computed geometry, colour tables, one-pass rendering, properties."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from multibox.data.augment import TrainAugmentation, ValTransform
from multibox.data.augment_colour import ColourJitter, adjust_contrast, hls_shift
from multibox.data.augment_geometry import (
    DEFAULT_SAMPLERS,
    CropSampler,
    crop_boxes,
    expand_boxes,
    flip_boxes,
    sample_crop,
    sample_expand,
    valid_boxes,
)
from multibox.data.augment_render import draft_for_region, render_region

NEAREST = Image.Resampling.NEAREST


# ---------------------------------------------------------------- geometry, by hand


def test_flip_boxes():
    boxes = np.array([[0.1, 0.2, 0.4, 0.9], [0.0, 0.0, 1.0, 1.0]])
    np.testing.assert_allclose(flip_boxes(boxes), [[0.6, 0.2, 0.9, 0.9], [0.0, 0.0, 1.0, 1.0]], atol=1e-15)


def test_expand_boxes_and_pixels():
    boxes = np.array([[0.2, 0.4, 0.6, 0.8]])
    # canvas 2x the image, image placed at (0.5, 1.0) image units: x' = (x + 0.5) / 2, y' = (y + 1) / 2
    np.testing.assert_allclose(expand_boxes(boxes, 0.5, 1.0, 2.0), [[0.35, 0.7, 0.55, 0.9]], atol=1e-15)
    # a box reaching beyond the image is clipped to the canvas
    np.testing.assert_allclose(
        expand_boxes(np.array([[-1.0, 0.0, 1.0, 4.0]]), 0.5, 0.5, 2.0), [[0, 0.25, 0.75, 1]]
    )


def test_crop_boxes_centre_rule_and_clip():
    rect = (0.25, 0.25, 0.5, 0.5)
    boxes = np.array(
        [
            [0.3, 0.3, 0.5, 0.5],  # centre 0.4: inside
            [0.1, 0.1, 0.4, 0.4],  # centre 0.25 = x: inside (x <= cx), clipped at 0
            [0.6, 0.6, 0.9, 0.9],  # centre 0.75 = x + w: outside (cx < x + w)
            [0.7, 0.2, 0.9, 0.3],  # centre x 0.8: outside
            [0.5, 0.5, 1.0, 0.6],  # centre (0.75 excluded) -> outside
            [0.4, 0.2, 0.9, 0.9],  # centre (0.65, 0.55): inside, clipped at 1 on the right
        ]
    )
    out, keep = crop_boxes(boxes, rect)
    assert keep.tolist() == [0, 1, 5]
    np.testing.assert_allclose(
        out, [[0.1, 0.1, 0.5, 0.5], [0.0, 0.0, 0.3, 0.3], [0.3, 0.0, 1.0, 1.0]], atol=1e-12
    )


def test_crop_sampler_draw_and_accept():
    rng = np.random.default_rng(0)
    sampler = CropSampler(min_iou=0.5)
    rects = sampler.draw(rng, image_aspect=4 / 3, n=2000)
    x, y, w, h = rects.T
    assert (x >= 0).all() and (y >= 0).all() and (x + w <= 1 + 1e-12).all() and (y + h <= 1 + 1e-12).all()
    area = w * h
    assert area.min() >= 0.3**2 * 0.99 and area.max() <= 1.0 + 1e-9
    ratio = (w * 4 / 3) / h  # pixel aspect ratio of the crop
    assert ratio.min() >= 0.5 - 1e-9 and ratio.max() <= 2.0 + 1e-9

    box = np.array([[0.2, 0.2, 0.6, 0.6]])
    same = np.array([[0.2, 0.2, 0.4, 0.4]])
    half = np.array([[0.2, 0.2, 0.4, 0.2]])  # IoU = 0.08 / 0.16 = 0.5
    disjoint = np.array([[0.7, 0.7, 0.2, 0.2]])
    assert sampler.accepts(np.concatenate([same, half, disjoint]), box).tolist() == [True, True, False]
    assert CropSampler(min_iou=0.9).accepts(half, box).tolist() == [False]
    assert CropSampler(min_iou=0.1, max_iou=0.4).accepts(same, box).tolist() == [False]
    assert sampler.accepts(disjoint, np.zeros((0, 4))).tolist() == [True]
    assert CropSampler(min_object_coverage=0.6).accepts(half, box).tolist() == [False]  # covers 0.5


def test_sample_crop_returns_consistent_result():
    boxes = np.array([[0.1, 0.1, 0.2, 0.2], [0.5, 0.5, 0.9, 0.8]])
    for seed in range(20):
        found = sample_crop(boxes, np.random.default_rng(seed), DEFAULT_SAMPLERS, 1.0)
        assert found is not None
        rect, cropped, keep = found
        expected, expected_keep = crop_boxes(boxes, rect)
        np.testing.assert_array_equal(cropped, expected)
        assert keep.tolist() == expected_keep.tolist() and len(keep) >= 1
        ious = [s.accepts(np.array([rect]), boxes)[0] for s in DEFAULT_SAMPLERS]
        assert any(ious)
    # without objects any first trial is accepted; an impossible sampler never accepts
    assert sample_crop(np.zeros((0, 4)), np.random.default_rng(0)) is not None
    assert sample_crop(boxes, np.random.default_rng(0), [CropSampler(min_iou=1.1)]) is None


def test_sample_expand():
    assert sample_expand(np.random.default_rng(0), prob=0.0) is None
    draws = [sample_expand(np.random.default_rng(s), prob=1.0) for s in range(200)]
    kept = [d for d in draws if d is not None]
    assert len(kept) > 150
    for x0, y0, scale in kept:
        assert 1.05 <= scale <= 4.0 and 0 <= x0 <= scale - 1 and 0 <= y0 <= scale - 1


def test_valid_boxes():
    boxes = np.array([[0, 0, 1, 1], [5, 5, 5, 9], [3, 3, 2, 4], [0, 0, np.nan, 1], [0, 0, 1e-6, 1e-6]])
    assert valid_boxes(boxes).tolist() == [True, False, False, False, True]


# ---------------------------------------------------------------- colour


def _hls_reference(rgb: tuple[int, int, int], dh: int, ds: int, dl: int) -> tuple[int, int, int]:
    """OpenCV's 8-bit RGB->HLS, shift with clamping, HLS->RGB, one pixel in float32 scalars."""
    f = np.float32
    r, g, b = (f(v) * f(1 / 255) for v in rgb)
    vmax, vmin = max(r, g, b), min(r, g, b)
    diff, h, s = vmax - vmin, f(0), f(0)
    lum = (vmax + vmin) * f(0.5)
    if diff > np.finfo(np.float32).eps:
        s = diff / (vmax + vmin) if lum < f(0.5) else diff / (f(2) - vmax - vmin)
        k = f(60) / diff
        if vmax == r:
            h = (g - b) * k
        elif vmax == g:
            h = (b - r) * k + f(120)
        else:
            h = (r - g) * k + f(240)
        h = h + f(360) if h < 0 else h
    big_h = min(max(int(np.rint(h * f(0.5))) + dh, 0), 180)
    big_l = min(max(int(np.rint(lum * f(255))) + dl, 0), 255)
    big_s = min(max(int(np.rint(s * f(255))) + ds, 0), 255)
    lum, s = f(big_l) * f(1 / 255), f(big_s) * f(1 / 255)
    p2 = lum * (f(1) + s) if lum <= f(0.5) else lum + s - lum * s
    p1 = f(2) * lum - p2
    sector, k = divmod(big_h % 180, 30)
    tab = (p2, p1, p1 + (p2 - p1) * (f(30 - k) / f(30)), p1 + (p2 - p1) * (f(k) / f(30)))
    order = ((0, 3, 1), (2, 0, 1), (1, 0, 3), (1, 2, 0), (3, 1, 0), (0, 1, 2))[sector]
    return tuple(int(min(max(np.rint(tab[i] * f(255)), 0), 255)) for i in order)


def test_hls_shift_hand_computed():
    red = np.array([[[255, 0, 0]]], np.uint8)
    # H 0 -> 10: sector 0, f = 1/3; L 128 (127.5 rounds to even), S 255 -> p2 = 1, p1 = 1/255
    assert hls_shift(red, hue=10).tolist() == [[[255, 86, 1]]]
    assert hls_shift(red, hue=-10).tolist() == [[[255, 1, 1]]]  # clamped at 0
    grey = np.array([[[100, 100, 100]]], np.uint8)
    assert hls_shift(grey, lightness=20).tolist() == [[[120, 120, 120]]]
    # a grey gains saturation at hue 0 (red): p2 = l (1 + s) -> 120, p1 = 2 l - p2 -> 80
    assert hls_shift(grey, saturation=50).tolist() == [[[120, 80, 80]]]


def test_hue_is_clamped_not_wrapped():
    # (255, 0, 43): H = round(0.5 * (360 - 60 * 43 / 255)) = 175; +18 clamps to 180, which converts as red.
    pixel = np.array([[[255, 0, 43]]], np.uint8)
    assert _hls_reference((255, 0, 43), 0, 0, 0) == (255, 1, 43)
    assert hls_shift(pixel, hue=18).tolist() == [[[255, 1, 1]]]  # wrapping would give H 13: (255, 112, 1)
    assert _hls_reference((255, 0, 43), 18, 0, 0) == (255, 1, 1)


@pytest.mark.parametrize("shift", [(0, 0, 0), (7, -20, 13), (-18, 32, -32), (18, -32, 32)])
def test_hls_shift_matches_float_reference(shift):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    image[0, :6] = [[0, 0, 0], [255, 255, 255], [9, 9, 9], [200, 200, 10], [10, 200, 200], [200, 10, 200]]
    got = hls_shift(image, *shift).reshape(-1, 3)
    want = np.array([_hls_reference(tuple(int(v) for v in p), *shift) for p in image.reshape(-1, 3)])
    same = (got == want).all(axis=1)
    # identical except at float rounding ties of H (about 0.03% of random pixels)
    assert same.mean() >= 0.99 and same[:6].all()


def test_contrast_and_jitter_sampling():
    assert adjust_contrast(np.array([100, 200, 10, 0], np.uint8), 0.5).tolist() == [150, 255, 15, 0]
    assert adjust_contrast(np.array([100, 201], np.uint8), -0.5).tolist() == [50, 100]  # 100.5 -> even
    off = ColourJitter(hue_prob=0, saturation_prob=0, lightness_prob=0, contrast_prob=0)
    assert off.sample(np.random.default_rng(0)) == (0, 0, 0, 0.0)
    on = ColourJitter(hue_prob=1, saturation_prob=1, lightness_prob=1, contrast_prob=1)
    draws = np.array([on.sample(np.random.default_rng(s)) for s in range(300)])
    assert (
        np.abs(draws[:, 0]).max() <= 18
        and np.abs(draws[:, 1]).max() <= 32
        and np.abs(draws[:, 3]).max() <= 0.5
    )
    assert (draws[:, :3] == np.trunc(draws[:, :3])).all() and np.abs(draws[:, 2]).max() >= 25
    image = np.full((2, 2, 3), 77, np.uint8)
    assert ColourJitter.apply(image, 0, 0, 0, 0.0) is image


# ---------------------------------------------------------------- rendering


def _jpeg(image: Image.Image, quality: int = 92) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    return Image.open(buffer)


def test_render_region_inside_matches_pillow():
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (40, 60, 3)).astype(np.uint8))
    out = render_region(image, (10, 5, 30, 20), (15, 10), resample=NEAREST)
    np.testing.assert_array_equal(out, np.asarray(image.crop((10, 5, 40, 25)).resize((15, 10), NEAREST)))
    flipped = render_region(image, (10, 5, 30, 20), (15, 10), resample=NEAREST, flip=True)
    np.testing.assert_array_equal(flipped, out[:, ::-1])
    assert out.flags.writeable and flipped.flags.c_contiguous


def test_render_region_fill_outside_image():
    image = Image.new("RGB", (100, 50), (10, 20, 30))
    # region = a canvas 2x wide with the image on its right half, 1.5x high with the image on top
    out = render_region(image, (-100, 0, 200, 75), (40, 30), fill=(1, 2, 3), colour=lambda p: p + 1)
    assert out.shape == (30, 40, 3)
    assert (out[:20, 20:] == [11, 21, 31]).all()  # jittered image, exactly 20 x 20 output pixels
    assert (out[:, :20] == [1, 2, 3]).all() and (out[20:] == [1, 2, 3]).all()  # fill never jittered
    before = render_region(image, (-100, 0, 200, 75), (40, 30), fill=(1, 2, 3), colour=lambda p: p + 1,
                           colour_before_resize=True)  # fmt: skip
    np.testing.assert_array_equal(before, out)
    # a region outside the image is all fill
    assert (render_region(image, (200, 0, 10, 10), (4, 4), fill=(9, 9, 9)) == 9).all()


def test_render_region_grey_and_palette_become_rgb():
    grey = Image.new("L", (20, 20), 200)
    assert (render_region(grey, (0, 0, 20, 20), (5, 5)) == 200).all()
    palette = Image.new("P", (20, 20), 0)
    assert render_region(palette, (0, 0, 20, 20), (5, 5)).shape == (5, 5, 3)


def test_draft_scales_coordinates():
    yy, xx = np.mgrid[0:1200, 0:1600]
    pattern = np.stack([xx * 255 // 1600, yy * 255 // 1200, (xx // 40 + yy // 40) % 2 * 200], axis=-1).astype(
        np.uint8
    )
    source = Image.fromarray(pattern)
    for region, expected_k in [((0, 0, 1600, 1200), 8), ((800, 300, 500, 400), 4), ((1000, 0, 150, 150), 1)]:
        lazy = _jpeg(source)
        out = render_region(lazy, region, (100, 75))
        reference = render_region(_jpeg(source), region, (100, 75), draft=False)
        assert np.abs(out.astype(int) - reference).mean() < 3  # same content at the same place
        assert draft_for_region(_jpeg(source), region[2:], (100, 75)) == expected_k
    assert draft_for_region(source, (1600, 1200), (100, 75)) == 1  # not a lazily opened JPEG


# ---------------------------------------------------------------- the whole recipe


def _white_box_image(size=(160, 120), box=(40, 30, 100, 90)) -> Image.Image:
    pixels = np.zeros((size[1], size[0], 3), np.uint8)
    pixels[box[1] : box[3], box[0] : box[2]] = 255
    return Image.fromarray(pixels)


def test_pixels_follow_boxes():
    """The output box must frame the white rectangle whatever flip, expand, crop and resize did."""
    box = np.array([[40, 30, 100, 90]], np.float32)
    augment = TrainAugmentation(data_shape=(90, 120), colour=None, interpolations=("nearest",), fill=0)
    seen_crop = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        pixels, boxes, labels, _ = augment(_white_box_image(), box, np.array([7]), np.array([False]), rng)
        assert pixels.shape == (90, 120, 3) and labels.tolist() == [7]
        x1, y1, x2, y2 = boxes[0] * [120, 90, 120, 90]
        white = pixels[..., 0] > 127
        inside = np.zeros_like(white)
        inside[int(np.ceil(y1)) + 1 : int(y2) - 1, int(np.ceil(x1)) + 1 : int(x2) - 1] = True
        assert white[inside].all()
        grown = np.zeros_like(white)
        grown[max(int(y1) - 1, 0) : int(np.ceil(y2)) + 1, max(int(x1) - 1, 0) : int(np.ceil(x2)) + 1] = True
        assert not white[~grown].any()
        seen_crop += not np.allclose(boxes[0], [0.25, 0.25, 0.625, 0.75]) and (boxes[0] > 0).all()
    assert seen_crop > 5


def test_reproducible_and_random():
    image = _white_box_image()
    box, label, diff = np.array([[40, 30, 100, 90]], np.float32), np.array([1]), np.array([True])
    augment = TrainAugmentation()
    a = augment(image, box, label, diff, np.random.default_rng(5))
    b = augment(image, box, label, diff, np.random.default_rng(5))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    outputs = {augment(image, box, label, diff, np.random.default_rng(s))[1].tobytes() for s in range(10)}
    assert len(outputs) > 5
    assert a[0].dtype == np.uint8 and a[0].shape == (300, 300, 3) and a[1].dtype == np.float32


def test_steps_off_is_a_plain_resize():
    image = _white_box_image()
    box = np.array([[40, 30, 100, 90]], np.float32)
    plain = TrainAugmentation(
        data_shape=(60, 80),
        colour=None,
        mirror_prob=0,
        expand_prob=0,
        samplers=(),
        interpolations=("bilinear",),
    )
    val = ValTransform(data_shape=(60, 80))
    rng = np.random.default_rng(0)
    for x, y in zip(plain(image, box, [2], [False], rng), val(image, box, [2], [False], rng), strict=True):
        np.testing.assert_array_equal(x, y)
    mirrored = TrainAugmentation(colour=None, mirror_prob=1, expand_prob=0, samplers=())
    np.testing.assert_allclose(mirrored(image, box, [2], [False], rng)[1], [[0.375, 0.25, 0.75, 0.75]])


def test_val_transform_boxes_and_declared_size():
    image = Image.new("RGB", (640, 480))
    boxes = np.array([[64, 48, 320, 240], [10, 10, 10, 50], [600, 400, 700, 500]], np.float32)
    pixels, out, labels, difficult = ValTransform()(image, boxes, [0, 1, 2], [True, False, True])
    assert pixels.shape == (300, 300, 3)
    np.testing.assert_allclose(out, [[0.1, 0.1, 0.5, 0.5], [600 / 640, 400 / 480, 1, 1]], rtol=1e-6)
    assert labels.tolist() == [0, 2] and difficult.tolist() == [True, True]
    half = ValTransform()(image, boxes[:1], [0], [False], size=(1280, 960))[1]
    np.testing.assert_allclose(half, [[0.05, 0.05, 0.25, 0.25]], rtol=1e-6)


def test_parameters_validated():
    with pytest.raises(ValueError):
        TrainAugmentation(interpolations=("cubic-ish",))
    with pytest.raises(ValueError):
        TrainAugmentation(fill="median")
    assert TrainAugmentation(fill="mean").fill == (123, 117, 104)
    assert TrainAugmentation().crop_prob == pytest.approx(5 / 6)


@pytest.mark.parametrize(
    ("stem", "fixture", "folder"),
    [("BloodImage_00343", "bccd_subset", "."), ("BloodImage_00338", "datasets_dir", "bccd")],
)
def test_real_zero_area_boxes(request, stem, fixture, folder):
    """bccd's two zero-area boxes: dropped, never a crash, the others kept and aligned (00343 is in the subset's
    train split; 00338 is in bccd's val split, so in the full set only)."""
    root = request.getfixturevalue(fixture) / folder
    objects = ET.parse(root / "Annotations" / f"{stem}.xml").getroot().iter("object")
    boxes = np.array(
        [[float(o.find("bndbox").find(t).text) for t in ("xmin", "ymin", "xmax", "ymax")] for o in objects],
        np.float32,
    )
    labels = np.arange(len(boxes))
    degenerate = ~valid_boxes(boxes)
    assert degenerate.sum() == 1
    with Image.open(root / "JPEGImages" / f"{stem}.jpg") as image:
        _, _, out_labels, _ = ValTransform()(image, boxes, labels, labels % 2 == 1)
    assert out_labels.tolist() == labels[~degenerate].tolist()
    augment = TrainAugmentation()
    for seed in range(8):
        with Image.open(root / "JPEGImages" / f"{stem}.jpg") as image:
            pixels, out, out_labels, out_difficult = augment(
                image, boxes, labels, labels % 2 == 1, np.random.default_rng(seed)
            )
        assert pixels.shape == (300, 300, 3) and len(out) == len(out_labels) == len(out_difficult)
        assert not set(out_labels.tolist()) & set(labels[degenerate].tolist())
        assert (out_difficult == (out_labels % 2 == 1)).all()


# ---------------------------------------------------------------- properties

_coordinate = st.floats(-30.0, 130.0, allow_nan=False, width=32)
_box = st.tuples(_coordinate, _coordinate, _coordinate, _coordinate)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    boxes=st.lists(_box, max_size=6),
    seed=st.integers(0, 2**32 - 1),
    size=st.tuples(st.integers(4, 48), st.integers(4, 48)),
    degenerate=st.booleans(),
)
def test_property_boxes_stay_valid_and_aligned(boxes, seed, size, degenerate):
    boxes = np.array(boxes, np.float32).reshape(-1, 4) * np.array([size[0], size[1]] * 2, np.float32) / 100
    if degenerate and len(boxes):
        boxes[0, 2:] = boxes[0, :2]  # a zero-area box
    labels = np.arange(len(boxes)) + 10
    difficult = labels % 3 == 0
    image = Image.new("RGB", size, (200, 50, 90))
    pixels, out, out_labels, out_difficult = TrainAugmentation(data_shape=(12, 16))(
        image, boxes, labels, difficult, np.random.default_rng(seed)
    )
    assert pixels.shape == (12, 16, 3) and pixels.dtype == np.uint8
    assert out.dtype == np.float32 and out.shape == (len(out_labels), 4) and len(out_difficult) == len(out)
    assert ((out >= 0) & (out <= 1)).all()
    assert (out[:, 2] > out[:, 0]).all() and (out[:, 3] > out[:, 1]).all()
    # every output object is a distinct input object with its own label and flag
    assert len(set(out_labels.tolist())) == len(out_labels)
    assert set(out_labels.tolist()) <= set(labels[valid_boxes(boxes)].tolist())
    assert (out_difficult == (out_labels % 3 == 0)).all()
