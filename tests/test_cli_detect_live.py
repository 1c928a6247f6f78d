"""``multibox detect`` on live sources: a stream URL (served over loopback HTTP by the test itself) is read frame
by frame as a live source, and the live window shows every annotated frame with its frames per second until the
user presses q or Esc or closes it, with what was read written. The window is OpenCV's, stood in for by a
recorder that passes every drawing call to the real OpenCV (CI has no display); the frames come from a video the
test makes (a red square moving by a known step)."""

from __future__ import annotations

import functools
import http.server
import json
import re
import threading

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from multibox.cli import main
from multibox.inference import TorchDetector, detections_to_json
from multibox.model import build_ssd
from tests.checkpoint_helpers import save_model_checkpoint
from tests.video_helpers import (
    FRAMES,
    HEIGHT,
    SQUARE,
    TOP,
    WIDTH,
    read_video,
    red_columns,
    square_left,
    write_video,
)

CLASSES = ["a", "b"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    torch.manual_seed(0)
    model = build_ssd("tiny", len(CLASSES), 64).eval()
    return save_model_checkpoint(model, "tiny", CLASSES, 64, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "moving.avi")


@pytest.fixture
def stream_url(video):
    """``video`` served by a plain HTTP server on 127.0.0.1 (loopback only) while the test runs."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # the test's output stays its own
            pass

    handler = functools.partial(Quiet, directory=str(video.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{video.name}"
    server.shutdown()
    server.server_close()


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_stream_url_is_read_frame_by_frame_as_a_live_source(
    checkpoint, video, stream_url, tmp_path, capsys
):
    out = tmp_path / "out"
    code = main(["detect", stream_url, "--checkpoint", checkpoint, "--thresh", "0.2", "--out", str(out)])
    assert (code or 0) == 0, capsys.readouterr()
    rows = _rows(out / "detections.jsonl")
    assert [r["frame"] for r in rows] == list(range(FRAMES))
    assert {(r["source"], r["width"], r["height"]) for r in rows} == {(stream_url, WIDTH, HEIGHT)}
    times = [r["time"] for r in rows]  # a live source's clock, not index / fps
    assert times[0] == 0 and times == sorted(times)
    frames, _ = read_video(video)  # the file read by OpenCV alone: the stream gave the same frames
    expected = TorchDetector(checkpoint).predict(frames, threshold=0.2)
    assert [r["detections"] for r in rows] == [detections_to_json(d, CLASSES) for d in expected]
    (annotated,) = out.glob("*.mp4")  # one annotated video, of every frame
    assert len(read_video(annotated)[0]) == FRAMES


def test_a_stream_that_does_not_answer_is_one_line_naming_it(checkpoint, tmp_path, capsys):
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler) as closed:
        port = closed.server_address[1]  # bound, then closed: nothing listens there
    url = f"http://127.0.0.1:{port}/live.mjpg"
    code = main(["detect", url, "--checkpoint", checkpoint, "--out", str(tmp_path / "out")])
    error = capsys.readouterr().err.strip()
    assert code != 0 and error.count("\n") == 0
    assert url in error and "the stream did not open" in error
    assert not (tmp_path / "out" / "detections.jsonl").exists()


class RecordingWindow:
    """OpenCV with its window calls recorded: ``imshow`` keeps each shown BGR frame, ``putText`` its text,
    ``waitKey`` answers ``key`` from the ``stop_at``-th shown frame on and ``getWindowProperty`` says the window
    is closed from then on when ``close_at`` is given; everything else (colour conversion, drawing, video files)
    is the real OpenCV."""

    def __init__(self, key: int = -1, stop_at: int | None = None, close_at: int | None = None) -> None:
        self.key, self.stop_at, self.close_at = key, stop_at, close_at
        self.shown: list[np.ndarray] = []
        self.texts: list[str] = []
        self.windows: list[str] = []
        self.sizes: list[tuple[int, int]] = []
        self.destroyed: list[str] = []

    def __getattr__(self, name):
        return getattr(cv2, name)

    def namedWindow(self, title, flags):  # noqa: N802 - OpenCV's names
        self.windows.append(title)

    def resizeWindow(self, title, width, height):  # noqa: N802
        self.sizes.append((width, height))

    def putText(self, image, text, *args):  # noqa: N802
        self.texts.append(text)
        return cv2.putText(image, text, *args)

    def imshow(self, title, image):
        assert title in self.windows, "shown before the window was made"
        self.shown.append(image.copy())

    def waitKey(self, delay):  # noqa: N802
        return self.key if self.stop_at is not None and len(self.shown) >= self.stop_at else -1

    def getWindowProperty(self, title, prop):  # noqa: N802
        return 0.0 if self.close_at is not None and len(self.shown) >= self.close_at else 1.0

    def destroyWindow(self, title):  # noqa: N802
        self.destroyed.append(title)


def _detect_with_window(monkeypatch, recorder, video, checkpoint, out, batches: list | None = None) -> int:
    monkeypatch.setenv("DISPLAY", ":0")
    if batches is not None:  # the size of every batch the detector is given
        predict = TorchDetector.predict
        monkeypatch.setattr(
            TorchDetector,
            "predict",
            lambda self, images, *a: batches.append(len(images)) or predict(self, images, *a),
        )
    monkeypatch.setattr("multibox.inference.annotate.import_cv2", lambda: recorder)
    return (
        main(["detect", str(video), "--checkpoint", checkpoint, "--thresh", "0.99", "--out", str(out)]) or 0
    )


@pytest.mark.parametrize(
    "recorder, stops_after",
    [
        (RecordingWindow(), FRAMES),  # nobody presses anything: the whole video
        (RecordingWindow(key=ord("q"), stop_at=5), 5),
        (RecordingWindow(key=27, stop_at=3), 3),  # Esc
        (RecordingWindow(close_at=7), 7),  # the user closed the window
    ],
    ids=["to-the-end", "q", "esc", "closed"],
)
def test_the_live_window_shows_each_annotated_frame_with_its_rate_until_stopped(
    recorder, stops_after, monkeypatch, video, checkpoint, tmp_path, capsys
):
    out, batches = tmp_path / "out", []
    assert _detect_with_window(monkeypatch, recorder, video, checkpoint, out, batches) == 0
    assert len(recorder.shown) == stops_after
    assert batches == [1] * stops_after  # watched: frame by frame, so playback is smooth and its rate true
    for index, bgr in enumerate(recorder.shown):  # frame by frame, in order, in OpenCV's BGR
        assert bgr.shape == (HEIGHT, WIDTH, 3)
        square_rows = bgr[TOP : TOP + SQUARE, :, ::-1]  # in RGB, below the frames-per-second text
        left, right = red_columns(Image.fromarray(np.ascontiguousarray(square_rows)))
        assert abs(left - square_left(index)) <= 1 and abs(right - (square_left(index) + SQUARE)) <= 1
    assert recorder.texts[0] == "0.0 fps" and all(re.fullmatch(r"\d+\.\d fps", t) for t in recorder.texts)
    assert len(recorder.texts) == stops_after and float(recorder.texts[-1].split()[0]) > 0
    assert recorder.sizes == [(WIDTH, HEIGHT)]  # opened at the frames' size, once
    assert recorder.destroyed == ["multibox detect"]
    assert [r["frame"] for r in _rows(out / "detections.jsonl")] == list(range(stops_after))
    assert len(read_video(out / "moving.mp4")[0]) == stops_after
    said = capsys.readouterr().out
    assert ("stopped by q" in said) == (stops_after < FRAMES)


def test_images_alone_open_no_window(monkeypatch, checkpoint, tmp_path):
    recorder = RecordingWindow()
    photo = tmp_path / "photo.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(photo)
    assert _detect_with_window(monkeypatch, recorder, photo, checkpoint, tmp_path / "out") == 0
    assert recorder.windows == [] and recorder.shown == []
    assert (tmp_path / "out" / "photo.png").is_file()
