"""Frame sources: a video's frames come back in order, counted, timed and in RGB; folders give their images by
ending; frames resize; a missing or unreadable video, an empty folder and a closed camera are one-line errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from PIL import Image

from multibox.errors import ConfigError, DataError
from multibox.inference.annotate import LiveWindow
from multibox.inference.frames import (
    ImageFiles,
    VideoFrames,
    import_cv2,
    open_sources,
    resize_frame,
    source_kind,
)
from tests.video_helpers import FPS, FRAMES, HEIGHT, SQUARE, WIDTH, red_columns, square_left, write_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "moving.avi")


def test_a_video_gives_every_frame_in_order_with_its_count_time_and_colours(video):
    (source,) = open_sources([str(video)])
    with source:
        assert isinstance(source, VideoFrames) and source.kind == "video" and not source.live
        assert source.count == FRAMES and source.fps == pytest.approx(FPS) and source.stem == "moving"
        frames = list(source)
    assert [f.index for f in frames] == list(range(FRAMES))
    assert [f.time for f in frames] == pytest.approx([i / FPS for i in range(FRAMES)])
    assert {f.image.size for f in frames} == {(WIDTH, HEIGHT)} and {f.image.mode for f in frames} == {"RGB"}
    for i, frame in enumerate(frames):  # red, not blue: OpenCV's BGR became RGB (MJPG blurs edges by a pixel)
        left, right = red_columns(frame.image)
        assert abs(left - square_left(i)) <= 1 and abs(right - (square_left(i) + SQUARE)) <= 1


def test_frames_resize_by_a_factor_or_to_a_size(video):
    (half,) = open_sources([str(video)], resize=0.5)
    with half:
        frames = list(half)
    assert len(frames) == FRAMES and {f.image.size for f in frames} == {(WIDTH // 2, HEIGHT // 2)}
    assert all(abs(red_columns(f.image)[0] - square_left(i) / 2) <= 1 for i, f in enumerate(frames))
    (sized,) = open_sources([str(video)], resize=(50, 30))
    with sized:
        assert {f.image.size for f in sized} == {(50, 30)}
    tiny = Image.new("RGB", (3, 5))
    assert resize_frame(tiny, 0.1).size == (1, 1) and resize_frame(tiny, None) is tiny


def _colour_image(path, value: int) -> None:
    Image.new("RGB", (8, 6), (value, 0, 0)).save(path)


def test_a_folder_gives_its_images_sorted_and_by_ext(tmp_path, video):
    folder = tmp_path / "folder"
    (folder / "sub").mkdir(parents=True)
    for name, value in [("b.png", 20), ("a.bmp", 10), ("C.PNG", 30), ("sub/d.png", 40)]:
        _colour_image(folder / name, value)
    (folder / "notes.txt").write_text("not an image\n")
    (folder / "clip.avi").write_bytes(video.read_bytes())

    (images,) = open_sources([str(folder)])
    assert isinstance(images, ImageFiles) and [p.name for p in images.paths] == ["C.PNG", "a.bmp", "b.png"]
    assert [np.asarray(f.image)[0, 0, 0] for f in images] == [30, 10, 20]  # each file's own pixels
    (png,) = open_sources([str(folder)], suffixes=(".png",))
    assert [p.name for p in png.paths] == ["C.PNG", "b.png"]
    (deep,) = open_sources([str(folder)], suffixes=(".png",), recursive=True)
    assert [p.relative_to(folder).as_posix() for p in deep.paths] == ["C.PNG", "b.png", "sub/d.png"]
    with_videos = open_sources([str(folder)], suffixes=(".png", ".avi"))
    assert [s.kind for s in with_videos] == ["images", "video"] and with_videos[1].count == FRAMES
    with_videos[1].close()


def test_what_an_argument_names():
    assert source_kind("0") == "camera" and source_kind("12") == "camera"
    assert source_kind("rtsp://camera.local:554/live") == "stream"
    assert source_kind("https://example.org/feed.mjpg") == "stream"
    assert source_kind("clip.MP4") == "video" and source_kind("photo.jpg") == "image"
    assert source_kind(".") == "folder"


def test_an_unreadable_image_is_named_to_the_callback_and_skipped(tmp_path):
    good, bad, gone = tmp_path / "good.png", tmp_path / "bad.png", tmp_path / "gone.jpg"
    _colour_image(good, 50)
    bad.write_bytes(b"not a png")
    named = []
    (source,) = open_sources([str(bad), str(gone), str(good)], on_unreadable=named.append)
    frames = list(source)
    assert [f.name for f in frames] == [str(good)] and frames[0].index == 0
    assert [e.name for e in named] == [str(bad), str(gone)]


@pytest.mark.parametrize(
    "arguments, camera, named",
    [
        (["{tmp}/gone.mp4"], None, "{tmp}/gone.mp4 does not exist"),
        (["{tmp}/nothing"], None, "{tmp}/nothing does not exist"),
        (["{tmp}/broken.mp4"], None, "{tmp}/broken.mp4"),
        (["{tmp}/empty"], None, "{tmp}/empty holds no files ending in .jpg"),
        ([], 97, "camera 97 did not open"),
    ],
)
def test_a_source_that_cannot_be_read_is_one_line_naming_it(arguments, camera, named, tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video" * 10)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(DataError) as error:
        for source in open_sources([a.format(tmp=tmp_path) for a in arguments], camera=camera):
            list(source)
    assert named.format(tmp=tmp_path) in str(error.value) and "\n" not in str(error.value)


def test_without_opencv_the_error_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # `import cv2` now raises ImportError
    with pytest.raises(ConfigError, match=r'pip install "multibox\[video\]"'):
        import_cv2()


class _NoGui:
    """A cv2 built without GUI support: creating a window raises its ``error``."""

    error = RuntimeError
    WINDOW_NORMAL, WINDOW_KEEPRATIO, WINDOW_GUI_NORMAL = 0x0, 0x0, 0x10

    def namedWindow(self, *args):  # noqa: N802 - OpenCV's name
        raise self.error("The function is not implemented")


def test_no_window_without_a_display_or_a_gui_and_no_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    assert LiveWindow.open() is None
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.setattr("multibox.inference.annotate.import_cv2", lambda: _NoGui())
    assert LiveWindow.open() is None
