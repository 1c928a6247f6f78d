"""The one image decoder: header checks, the pixel limit, truncation, 16-bit scaling, mode conversions, EXIF."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pytest
from PIL import Image, ImageFile

import multibox  # noqa: F401  (importing the package must leave Pillow's settings alone)
from multibox.data import ImageDecodeError, open_image, read_rgb, to_rgb
from multibox.data.augment import TrainAugmentation, ValTransform
from multibox.data.augment_render import draft_for_region
from multibox.data.image_io import MAX_MEGAPIXELS_ENV, max_pixels_limit
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import check_dataset, clean_for_training
from multibox.errors import ConfigError, DataError
from tests.image_helpers import (
    encode,
    grey16_ramp,
    huge_png,
    jpeg_bytes,
    noise,
    rgb16_png,
    truncate_jpeg,
    write_truncated_jpeg,
)


def _decode_error(source, **options) -> ImageDecodeError:
    with pytest.raises(ImageDecodeError) as caught:
        read_rgb(source, **options)
    return caught.value


def test_pillow_loads_no_truncated_images():
    import multibox.data.image_io  # noqa: F401

    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


# truncated data


def test_truncated_jpeg_header_reads_but_decoding_raises_naming_the_file(tmp_path):
    path = write_truncated_jpeg(tmp_path / "cut.jpg", noise(120, 160))
    with open_image(path) as image:  # the header is intact
        assert image.size == (160, 120) and image.format == "JPEG"
    error = _decode_error(path)
    assert isinstance(error, DataError) and error.kind == "truncated"
    assert error.name == str(path) and "truncated" in error.reason
    message = str(error)
    assert "\n" not in message and message.startswith(f"{path}: ") and "copy or export it again" in message
    assert error.problem_kind == "truncated image"


@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg_raises_through_the_augmentation_draft_path(tmp_path, progressive):
    data = truncate_jpeg(jpeg_bytes(noise(480, 640), progressive=progressive))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data)
    rng = np.random.default_rng(0)
    for transform in (ValTransform((60, 60)), TrainAugmentation((60, 60), expand_prob=0, crop_prob=0)):
        with open_image(path) as image, pytest.raises(ImageDecodeError, match="truncated"):
            transform(image, np.zeros((0, 4)), np.zeros(0), np.zeros(0), rng)


def test_open_leaves_a_jpeg_undecoded_so_the_draft_speed_path_still_works(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes(jpeg_bytes(noise(800, 1200)))
    with open_image(path) as image:
        assert draft_for_region(image, (1200, 800), (300, 200)) == 4  # DCT scaling by 1/4 was granted
        assert to_rgb(image).size == (300, 200)


# the pixel limit


def test_a_20000_by_20000_png_is_refused_from_its_header_quickly(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png(20_000, 20_000))
    assert path.stat().st_size < 200_000
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # neither Pillow's bomb warning nor anything else
        error = _decode_error(path)
    assert time.perf_counter() - start < 0.5  # 400 million pixels were never decoded
    assert error.kind == "too large" and error.problem_kind == "image too large"
    assert "400,000,000 pixels" in error.reason and str(error).startswith(f"{path}: ")
    assert MAX_MEGAPIXELS_ENV in str(error)


def test_our_limit_fires_before_pillows_warning(tmp_path):
    path = tmp_path / "wide.png"
    path.write_bytes(huge_png(12_000, 12_000))  # 144 MP: over Pillow's warning (89 MP), under its error
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        error = _decode_error(path)
    assert error.kind == "too large"
    assert error.reason == "image of 12000x12000 = 144,000,000 pixels is over the limit of 100,000,000 pixels"


def test_images_between_pillows_warning_and_our_limit_decode_silently(tmp_path):
    path = tmp_path / "95mp.png"
    path.write_bytes(huge_png(10_000, 9_500))  # 95 MP
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with open_image(path) as image:
            assert image.size == (10_000, 9_500)


def test_limit_from_keyword_environment_and_default(monkeypatch, tmp_path):
    data = encode(Image.new("RGB", (200, 100)), "PNG")
    monkeypatch.delenv(MAX_MEGAPIXELS_ENV, raising=False)
    assert max_pixels_limit() == 100_000_000
    assert read_rgb(data).size == (200, 100)
    monkeypatch.setenv(MAX_MEGAPIXELS_ENV, "0.01")  # 10,000 pixels
    assert max_pixels_limit() == 10_000
    error = _decode_error(data, name="small.png")
    assert error.kind == "too large"
    assert error.reason == "image of 200x100 = 20,000 pixels is over the limit of 10,000 pixels"
    assert read_rgb(data, max_pixels=20_000).size == (200, 100)  # the keyword wins
    for bad in ("lots", "-5", "0", "inf"):
        monkeypatch.setenv(MAX_MEGAPIXELS_ENV, bad)
        with pytest.raises(ConfigError, match=MAX_MEGAPIXELS_ENV):
            read_rgb(data)


# unreadable files


def test_files_that_are_no_image_empty_or_missing(tmp_path):
    text = tmp_path / "notes.jpg"
    text.write_text("not a jpeg")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert _decode_error(text).kind == "not an image"
    assert _decode_error(empty).kind == "not an image" and "empty" in _decode_error(empty).reason
    missing = _decode_error(tmp_path / "gone.jpg")
    assert missing.kind == "unreadable" and str(missing).startswith(f"{tmp_path / 'gone.jpg'}: ")
    assert _decode_error(tmp_path).kind == "unreadable"  # a folder
    assert (
        _decode_error(encode(Image.new("RGB", (8, 8)), "GIF"), formats=("JPEG", "PNG")).kind == "not an image"
    )


def test_broken_png_data_is_an_error(tmp_path):
    data = bytearray(encode(Image.fromarray(noise(64, 64)), "PNG"))
    data[len(data) // 2 : len(data) // 2 + 16] = b"\x00" * 16  # corrupt the compressed stream
    error = _decode_error(bytes(data), name="broken.png")
    assert error.kind in ("corrupt", "truncated") and error.name == "broken.png"


# conversions to 8-bit RGB


def test_16_bit_grey_png_is_scaled_not_clipped():
    ramp = grey16_ramp()
    rgb = np.asarray(read_rgb(encode(Image.fromarray(ramp), "PNG")))
    assert rgb.dtype == np.uint8 and rgb.shape == (*ramp.shape, 3)
    expected = ramp.astype(np.float64) * 255 / 65535
    for channel in range(3):
        assert np.abs(rgb[..., channel] - expected).max() <= 0.5 + 1e-9  # rounded
    assert rgb[0, 0, 0] == 0 and rgb[0, -1, 0] == 255
    assert (rgb == 255).mean() < 0.01  # clipping made 99.6 % of the ramp white


@pytest.mark.parametrize("dtype", ["<u2", ">u2"])
def test_16_bit_modes_in_memory(dtype):
    ramp = grey16_ramp().astype(dtype)
    image = Image.fromarray(ramp)
    assert image.mode in ("I;16", "I;16B")
    expected = ramp.astype(np.float64) * 255 / 65535
    assert np.abs(np.asarray(to_rgb(image))[..., 1] - expected).max() <= 0.5 + 1e-9


def test_32_bit_integer_and_float_images():
    ramp = grey16_ramp()
    as_int = Image.fromarray(ramp.astype(np.int32))
    assert as_int.mode == "I"
    expected = ramp.astype(np.float64) * 255 / 65535
    assert np.abs(np.asarray(to_rgb(as_int))[..., 0] - expected).max() <= 0.5 + 1e-9
    fraction = np.linspace(0, 1, 256, dtype=np.float32).reshape(1, 256).repeat(4, axis=0)
    as_float = Image.fromarray(fraction)
    assert as_float.mode == "F"
    assert np.abs(np.asarray(to_rgb(as_float))[..., 2] - fraction * 255).max() <= 0.5 + 1e-6


def test_16_bit_rgb_png_keeps_each_channel():
    ramp = grey16_ramp()
    pixels = np.stack([ramp, ramp[:, ::-1], np.full_like(ramp, 32768)], axis=-1)
    rgb = np.asarray(read_rgb(rgb16_png(pixels)))
    assert np.abs(rgb - pixels.astype(np.float64) * 255 / 65535).max() <= 1.0


def test_cmyk_jpeg_becomes_rgb():
    cmyk = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # no cyan, full magenta and yellow: red
    rgb = np.asarray(read_rgb(encode(cmyk, "JPEG", quality=95)))
    assert rgb.shape == (16, 32, 3)
    assert np.abs(rgb.astype(int) - [255, 0, 0]).max() <= 3


def test_palette_png_with_transparency_keeps_the_palette_colours():
    indices = np.array([[0, 1, 2, 1]] * 3, np.uint8)
    palette = Image.fromarray(indices, "P")
    palette.putpalette([200, 10, 10, 10, 200, 10, 10, 10, 200])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "palette images with transparency" warning either
        rgb = np.asarray(read_rgb(encode(palette, "PNG", transparency=bytes([0, 128, 255]))))
    colours = {0: [200, 10, 10], 1: [10, 200, 10], 2: [10, 10, 200]}
    assert rgb.tolist() == [[colours[i] for i in row] for row in indices.tolist()]


def test_alpha_is_dropped_not_composited():
    pixels = np.zeros((4, 6, 4), np.uint8)
    pixels[..., :3] = (10, 120, 250)
    pixels[:, :3, 3] = 0  # left half fully transparent
    pixels[:, 3:, 3] = 100
    rgb = np.asarray(read_rgb(encode(Image.fromarray(pixels, "RGBA"), "PNG")))
    assert (rgb == [10, 120, 250]).all()
    grey = np.stack([np.full((4, 6), 77, np.uint8), np.zeros((4, 6), np.uint8)], axis=-1)
    assert (np.asarray(read_rgb(encode(Image.fromarray(grey, "LA"), "PNG"))) == 77).all()


@pytest.mark.parametrize("mode", ["1", "L", "P", "YCbCr", "RGB"])
def test_other_modes_are_rgb(mode):
    image = to_rgb(Image.new(mode, (7, 5)))
    assert image.mode == "RGB" and image.size == (7, 5)


# EXIF orientation


def _rotated_jpeg(path):
    """A stored 40x20 image, left half red, right half blue, whose EXIF says: show it rotated 90 degrees."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (255, 0, 0)
    pixels[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(pixels).save(path, quality=95, exif=exif.tobytes())
    return path


def test_orientation_only_where_asked(tmp_path):
    path = _rotated_jpeg(tmp_path / "rotated.jpg")
    assert read_rgb(path).size == (40, 20)  # the stored pixels
    shown = np.asarray(read_rgb(path, orient=True))
    assert shown.shape == (40, 20, 3)
    assert shown[2, 10, 0] > 200 and shown[-3, 10, 2] > 200  # red on top, blue at the bottom


def test_the_loader_keeps_the_stored_pixels_boxes_refer_to(tmp_path):
    from multibox.data.loader import LoaderDataset

    path = _rotated_jpeg(tmp_path / "rotated.jpg")
    record = DetectionRecord("rotated", path, 40, 20, [[0, 0, 20, 20]], [0])
    image, label = LoaderDataset(DetectionDataset([record], ["red"]), ValTransform((16, 16)))[0]
    pixels = image.permute(1, 2, 0).numpy()
    assert pixels[8, 2, 0] > 200 and pixels[8, -3, 2] > 200  # red left, blue right, as stored
    assert label[0, 1:5].tolist() == [0.0, 0.0, 0.5, 1.0]


# data check


def _huge_record(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(huge_png())
    return DetectionRecord("huge", path, 20_000, 20_000, [[0, 0, 10, 10]], [0])


@pytest.mark.parametrize("decode", [False, True])
def test_check_reports_a_too_large_image_as_fatal_in_both_modes(tmp_path, decode):
    good = tmp_path / "good.png"
    Image.new("RGB", (30, 20)).save(good)
    truncated = write_truncated_jpeg(tmp_path / "cut.jpg", noise(60, 80))
    records = [
        _huge_record(tmp_path),
        DetectionRecord("good", good, 30, 20, [[1, 1, 5, 5]], [0]),
        DetectionRecord("cut", truncated, 80, 60, [[1, 1, 5, 5]], [0]),
    ]
    dataset = DetectionDataset(records, ["thing"])
    report = check_dataset(dataset, decode=decode)
    kinds = {(p.kind, p.image_id) for p in report.problems if p.fatal}
    assert ("image too large", "huge") in kinds and report.fatal
    assert (("truncated image", "cut") in kinds) == decode  # only decoding finds truncated data
    huge = next(p for p in report.problems if p.kind == "image too large")
    assert huge.detail.startswith("huge.png: image of 400,000,000 pixels")
    cleaned, summary = clean_for_training(dataset, report)
    assert "huge" not in [r.image_id for r in cleaned.records] and "good" in [
        r.image_id for r in cleaned.records
    ]
    assert f"skipped {2 if decode else 1} unreadable images" in summary
