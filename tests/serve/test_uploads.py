"""Upload decoding and the streaming body limit, without a network."""

from __future__ import annotations

import asyncio
import io
import json
import time

import numpy as np
import pytest
from PIL import Image

from multibox.inference import read_image
from multibox.serve import create_app
from multibox.serve.uploads import UploadError, decode_image
from tests.serve.serve_helpers import FakeDetector, png_header


def _encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **options)
    return buffer.getvalue()


def _error(data: bytes, max_pixels: int = 50_000_000) -> UploadError:
    with pytest.raises(UploadError) as caught:
        decode_image(data, max_pixels)
    return caught.value


def test_jpeg_decodes_as_read_image_does(bccd_images):
    image, image_format = decode_image(bccd_images[0].read_bytes(), 50_000_000)
    assert image_format == "JPEG" and image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image), np.asarray(read_image(bccd_images[0])))


@pytest.mark.parametrize("image_format", ["PNG", "WEBP"])
def test_png_and_webp_decode_losslessly(bccd_images, image_format):
    original = read_image(bccd_images[0])
    image, found = decode_image(_encode(original, image_format, lossless=True), 50_000_000)
    assert found == image_format
    np.testing.assert_array_equal(np.asarray(image), np.asarray(original))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "1", "I;16"])
def test_every_png_mode_becomes_rgb(mode):
    image, _ = decode_image(_encode(Image.new(mode, (7, 5)), "PNG"), 50_000_000)
    assert image.mode == "RGB" and image.size == (7, 5)


def test_exif_orientation_is_applied(tmp_path):
    upright = Image.new("RGB", (40, 20), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated by 90 degrees
    path = tmp_path / "rotated.jpg"
    upright.save(path, exif=exif.tobytes())
    image, _ = decode_image(path.read_bytes(), 50_000_000)
    assert image.size == (20, 40) == read_image(path).size


@pytest.mark.parametrize("image_format", ["GIF", "BMP", "TIFF"])
def test_other_image_formats_are_415(image_format):
    error = _error(_encode(Image.new("RGB", (8, 8)), image_format))
    assert error.status_code == 415 and "JPEG, PNG or WebP" in error.detail


def test_bytes_that_are_no_image_are_415():
    assert _error(b"%PDF-1.4 not an image at all").status_code == 415


def test_empty_upload_is_400():
    error = _error(b"")
    assert error.status_code == 400 and "empty" in error.detail


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_truncated_images_are_400(bccd_images, image_format):
    data = _encode(read_image(bccd_images[0]), image_format)
    error = _error(data[: len(data) // 2])
    assert error.status_code == 400 and "truncated or corrupt" in error.detail


def test_pixel_limit_is_checked_from_the_header_before_decoding():
    start = time.perf_counter()
    error = _error(png_header(8_000, 8_000), max_pixels=10_000_000)
    assert time.perf_counter() - start < 0.5  # 64 million pixels were never decoded
    assert error.status_code == 413
    assert "8000x8000 = 64,000,000 pixels is over the limit of 10,000,000 pixels" in error.detail


def test_pillow_decompression_bomb_is_413():
    error = _error(png_header(100_000, 100_000), max_pixels=10**12)
    assert error.status_code == 413 and "decompression bomb" in error.detail


# The body limit, driven through the ASGI interface so that what the app reads can be counted.

LIMIT = 100_000
BOUNDARY = b"multibox-test"


def _scope(headers: list[tuple[bytes, bytes]]) -> dict:
    content_type = (b"content-type", b"multipart/form-data; boundary=" + BOUNDARY)
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/detect",
        "raw_path": b"/v1/detect",
        "query_string": b"",
        "root_path": "",
        "headers": [content_type, *headers],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }


def _call(scope: dict, receive) -> tuple[int, dict]:
    app = create_app(FakeDetector(), max_upload_bytes=LIMIT)
    sent = []

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body)


def test_declared_oversized_body_is_refused_before_reading_it():
    reads = []

    async def receive():
        reads.append(1)
        return {"type": "http.request", "body": b"x" * 65536, "more_body": True}

    status, answer = _call(_scope([(b"content-length", b"1000000000")]), receive)
    assert status == 413 and "over the limit of 100,000 bytes" in answer["detail"]
    assert reads == []


def test_endless_streamed_body_is_cut_off_at_the_limit():
    chunk = 16384
    read = 0
    head = b"--" + BOUNDARY + b'\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'

    async def receive():  # a chunked upload that never ends
        nonlocal read
        body = head if read == 0 else b"\xff" * chunk
        read += len(body)
        return {"type": "http.request", "body": body, "more_body": True}

    status, answer = _call(_scope([]), receive)
    assert status == 413 and "over the limit of 100,000 bytes" in answer["detail"]
    assert read <= LIMIT + 64 * 1024 + chunk + len(head)


def test_16_bit_png_upload_is_scaled_not_clipped():
    ramp = np.round(np.linspace(0, 65535, 512)).astype(np.uint16).reshape(1, 512).repeat(4, axis=0)
    image, image_format = decode_image(_encode(Image.fromarray(ramp), "PNG"), 50_000_000)
    assert image_format == "PNG" and image.mode == "RGB"
    pixels = np.asarray(image)
    assert np.abs(pixels - (ramp.astype(np.float64) * 255 / 65535)[..., None]).max() <= 0.5 + 1e-9
    assert (pixels == 255).mean() < 0.01


def test_truncated_jpeg_upload_with_an_intact_header_is_400(bccd_images):
    from tests.image_helpers import truncate_jpeg

    error = _error(truncate_jpeg(bccd_images[0].read_bytes()))
    assert (
        error.status_code == 400
        and "the JPEG image is truncated or corrupt: image file is truncated" in error.detail
    )
