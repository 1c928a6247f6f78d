"""The HTTP API on a real uvicorn server: answers equal to the checkpoint's network run by hand on the upload, and
a clear 4xx for every bad input."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from PIL import Image

from multibox.deploy import TorchDetector
from multibox.inference import read_image
from multibox.serve import create_app
from tests.serve.serve_helpers import (
    CheckpointModel,
    FakeDetector,
    assert_answer_matches,
    expected_answer,
    png_header,
    raw_request,
    running,
)


@pytest.fixture(scope="module")
def server(detector: TorchDetector) -> Iterator[str]:
    """The real BCCD detector with a 1 MiB upload limit and a 4 megapixel image limit."""
    app = create_app(detector, max_upload_bytes=2**20, max_pixels=4_000_000, model_info={"name": "bccd"})
    with running(app) as url:
        yield url


@pytest.fixture
def client(server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server, timeout=60) as client:
        yield client


def _post(client: httpx.Client, data: bytes, name: str = "image.jpg", **params) -> httpx.Response:
    return client.post("/v1/detect", params=params, files={"file": (name, data, "image/jpeg")})


def _still_answers(client: httpx.Client, image: bytes) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert _post(client, image).status_code == 200


def test_detections_equal_the_network_run_by_hand_on_the_same_image(client, checkpoint_model, bccd_images):
    net: CheckpointModel = checkpoint_model
    for path in bccd_images[:3]:
        data = path.read_bytes()
        response = _post(client, data, path.name, threshold=0.3)
        assert response.status_code == 200
        answer = response.json()
        assert answer["image"]["format"] == "JPEG"
        assert answer["threshold"] == 0.3
        assert answer["model"] == {"name": "bccd", "class_names": ["Platelets", "RBC", "WBC"]}
        expected = expected_answer(net.model, net.data_shape, data, threshold=0.3)
        assert (expected["width"], expected["height"]) == (640, 480) and len(expected["class_ids"]) > 0
        assert_answer_matches(answer, expected, net.class_names)


def test_default_threshold_and_score_order(client, checkpoint_model, bccd_images):
    data = bccd_images[0].read_bytes()
    answer = _post(client, data).json()
    detections = answer["detections"]
    scores = [d["score"] for d in detections]
    net: CheckpointModel = checkpoint_model
    tuned = net.model.detection.display_threshold  # the F1-best score training found on validation
    assert tuned != 0.5 and answer["threshold"] == tuned
    assert scores and min(scores) >= tuned and scores == sorted(scores, reverse=True)
    assert {d["class_name"] for d in detections} <= {"Platelets", "RBC", "WBC"}
    assert_answer_matches(answer, expected_answer(net.model, net.data_shape, data, tuned), net.class_names)


def test_the_declared_content_type_is_not_trusted(client, bccd_images):
    png = io.BytesIO()
    read_image(bccd_images[0]).save(png, "PNG")
    response = client.post("/v1/detect", files={"file": ("photo.jpg", png.getvalue(), "image/jpeg")})
    assert response.status_code == 200 and response.json()["image"]["format"] == "PNG"
    response = client.post("/v1/detect", files={"file": ("notes.png", b"just some text\n", "image/png")})
    assert response.status_code == 415


def test_healthz_reports_model_and_limits(client, checkpoint_model):
    health = client.get("/healthz").json()
    assert health["status"] == "ok" and health["model"]["class_names"] == ["Platelets", "RBC", "WBC"]
    assert health["max_upload_bytes"] == 2**20 and health["max_pixels"] == 4_000_000
    assert health["default_threshold"] == checkpoint_model.model.detection.display_threshold


def test_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="detections"' in page.text and 'type="range"' in page.text
    for name, kind in (("app.js", "javascript"), ("style.css", "text/css")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and kind in response.headers["content-type"]


def test_non_image_bytes_are_415(client, bccd_images):
    response = _post(client, b"MZ\x90\x00 this is an executable, not a photo")
    assert response.status_code == 415
    assert response.json()["detail"] == "the upload is not a JPEG, PNG or WebP image"
    _still_answers(client, bccd_images[0].read_bytes())


def test_truncated_image_is_400(client, bccd_images):
    data = bccd_images[1].read_bytes()
    response = _post(client, data[: len(data) // 3])
    assert response.status_code == 400 and "truncated" in response.json()["detail"]
    _still_answers(client, bccd_images[0].read_bytes())


def test_oversized_upload_is_413(client, bccd_images):
    response = _post(client, b"\xff\xd8" + b"\0" * (2 * 2**20))
    assert response.status_code == 413
    assert response.json()["detail"] == "the upload is over the limit of 1,048,576 bytes (1 MiB)"
    _still_answers(client, bccd_images[0].read_bytes())


def test_oversized_upload_is_refused_from_its_header_before_the_body_is_sent(server, client, bccd_images):
    head = (
        b"POST /v1/detect HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 50000000000\r\n\r\n"
    )
    answer = raw_request(server, head)  # no body follows: the answer comes from the header alone
    assert answer.startswith(b"HTTP/1.1 413 ")
    assert b"over the limit of 1,048,576 bytes" in answer
    _still_answers(client, bccd_images[0].read_bytes())


def test_image_over_the_pixel_limit_is_413(client, bccd_images):
    response = _post(client, png_header(3000, 2000), "big.png")
    assert response.status_code == 413
    assert response.json()["detail"] == (
        "image of 3000x2000 = 6,000,000 pixels is over the limit of 4,000,000 pixels"
    )
    response = _post(client, png_header(100_000, 100_000), "bomb.png")
    assert response.status_code == 413 and "decompression bomb" in response.json()["detail"]
    _still_answers(client, bccd_images[0].read_bytes())


def test_missing_file_field_is_422(client, bccd_images):
    data = bccd_images[0].read_bytes()
    response = client.post("/v1/detect", files={"image": ("a.jpg", data, "image/jpeg")})
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "file"]
    assert client.post("/v1/detect").status_code == 422
    _still_answers(client, data)


@pytest.mark.parametrize("threshold", ["-0.1", "1.5", "high"])
def test_threshold_out_of_range_is_422(client, bccd_images, threshold):
    response = _post(client, bccd_images[0].read_bytes(), threshold=threshold)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "threshold"]


def test_requests_beyond_the_queue_get_503_and_the_queue_drains():
    release = threading.Event()
    detector = FakeDetector(release)
    image = io.BytesIO()
    Image.new("RGB", (32, 32)).save(image, "PNG")
    files = {"file": ("a.png", image.getvalue(), "image/png")}
    with running(create_app(detector, max_pending=1)) as url, ThreadPoolExecutor(1) as pool:
        first = pool.submit(httpx.post, f"{url}/v1/detect", files=files, timeout=30)
        assert detector.started.wait(timeout=10)
        busy = httpx.post(f"{url}/v1/detect", files=files, timeout=30)
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        release.set()
        answer = first.result().json()
        assert answer["detections"] == [
            {"box": [1.0, 2.0, 3.0, 4.0], "score": 0.9, "class_id": 1, "class_name": "dog"}
        ]
        assert httpx.post(f"{url}/v1/detect", files=files, timeout=30).status_code == 200


def test_an_exported_onnx_file_is_served_the_same_way(
    bccd_checkpoint, checkpoint_model, bccd_images, tmp_path
):
    from multibox.deploy import export_checkpoint, open_detector

    onnx = open_detector(export_checkpoint(bccd_checkpoint, "onnx", out=tmp_path / "bccd.onnx").path)
    data = bccd_images[0].read_bytes()
    with running(create_app(onnx, model_info={"name": "bccd.onnx"})) as url:
        response = httpx.post(f"{url}/v1/detect", params={"threshold": 0.3}, files={"file": ("a.jpg", data)})
    assert response.status_code == 200
    # The exported file, served, answers what the checkpoint's network answers (its NMS, per-class decoding and
    # 200-detection cap are baked in; this image has far fewer detections above 0.3).
    net: CheckpointModel = checkpoint_model
    expected = expected_answer(net.model, net.data_shape, data, threshold=0.3)
    assert 0 < len(expected["class_ids"]) < 200
    assert_answer_matches(response.json(), expected, net.class_names)
