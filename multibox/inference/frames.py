"""Where ``multibox detect``'s pictures come from: image files and folders, video files, cameras and stream URLs,
each one :class:`FrameSource` of numbered RGB frames.

Videos, cameras and streams are read with OpenCV (``cv2``, the ``video`` extra, imported on first use): one
``cv2.VideoCapture`` opens all three, and the same library writes the annotated video and shows the live window
(:mod:`multibox.inference.annotate`), as the original example's camera demo did. Still images are decoded by
:func:`multibox.inference.read_image` (the project's one image decoder).
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from multibox.data.image_io import IMAGE_SUFFIXES, ImageDecodeError
from multibox.errors import ConfigError, DataError
from multibox.inference.images import read_image

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")
"""Lower-case endings of the files read as videos."""

DEFAULT_FPS = 25.0
"""Frames per second of a camera, stream or video that does not tell its own."""

_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

Resize = float | tuple[int, int] | None
"""A frame resize: a factor for both sides, the ``(width, height)`` to resize to, or None (keep the size)."""


def import_cv2() -> Any:
    """OpenCV's ``cv2`` module, or a one-line :class:`ConfigError` saying what to install.

    OpenCV's and FFmpeg's own warnings are silenced unless ``OPENCV_LOG_LEVEL`` / ``OPENCV_FFMPEG_LOGLEVEL``
    say otherwise: a source that fails is one line of ours naming it."""
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    try:
        import cv2
    except ImportError as error:
        raise ConfigError(
            f'videos, cameras and streams need OpenCV ({error}): pip install "multibox[video]"'
        ) from error
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if "OPENCV_LOG_LEVEL" not in os.environ and logging is not None:
        logging.setLogLevel(logging.LOG_LEVEL_ERROR)
    return cv2


@dataclass(frozen=True)
class Frame:
    """One picture of a source.

    Attributes:
        index: 0-based position in its source (the readable images of an image source).
        name: the image file, or the source's name for a video frame.
        image: RGB, resized as the source was asked to.
        time: seconds since the start (a video's frame index / fps, a live source's clock); None for images.
    """

    index: int
    name: str
    image: Image.Image
    time: float | None = None


def resize_frame(image: Image.Image, resize: Resize) -> Image.Image:
    """``image`` scaled by a factor, or resized to ``(width, height)`` (bilinear); ``None`` keeps it."""
    if resize is None:
        return image
    if isinstance(resize, tuple):
        size = (int(resize[0]), int(resize[1]))
    else:
        size = (max(1, round(image.width * resize)), max(1, round(image.height * resize)))
    return image if size == image.size else image.resize(size, Image.BILINEAR)


class FrameSource:
    """The frames of one source, in order: iterate once (``for frame in source``), then :meth:`close`.

    Attributes:
        name: what the user gave (a path, ``camera 0``, a URL).
        kind: ``"images"``, ``"video"``, ``"camera"`` or ``"stream"``.
        count: the frames it will give, or None when unknown (cameras, streams, videos that do not say).
        fps: frames per second of a video, camera or stream (:data:`DEFAULT_FPS` when it does not say).
        live: frames arrive in real time until the user stops (cameras, streams).
        stem: the file name (without suffix) of the annotated video written for it.
    """

    kind = "images"
    live = False
    fps: float | None = None

    def __init__(self, name: str, count: int | None, resize: Resize = None) -> None:
        self.name, self.count, self.resize = name, count, resize
        self.stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "video"

    def __iter__(self) -> Iterator[Frame]:
        for frame in self._frames():
            yield dataclasses.replace(frame, image=resize_frame(frame.image, self.resize))

    def _frames(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release the file, camera or connection (a no-op for images)."""

    def __enter__(self) -> FrameSource:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class ImageFiles(FrameSource):
    """Still images in the given order. One that cannot be decoded goes to ``on_unreadable`` (its
    :class:`ImageDecodeError`) and is skipped, or, without ``on_unreadable``, is raised."""

    def __init__(
        self,
        paths: Sequence[str | Path],
        resize: Resize = None,
        on_unreadable: Callable[[ImageDecodeError], None] | None = None,
    ) -> None:
        super().__init__("images", len(paths), resize)
        self.paths = [Path(p) for p in paths]
        self.on_unreadable = on_unreadable

    def _frames(self) -> Iterator[Frame]:
        index = 0
        for path in self.paths:
            try:
                image = read_image(path)
            except ImageDecodeError as error:
                if self.on_unreadable is None:
                    raise
                self.on_unreadable(error)
                continue
            yield Frame(index, str(path), image)
            index += 1


_DOES_NOT_OPEN = {
    "video": "{name}: OpenCV cannot read this video; check the file, or convert it (ffmpeg -i {name} out.mp4)",
    "camera": "{name} did not open: check that it is connected and not in use (cameras count from 0)",
    "stream": "{name}: the stream did not open; check the address and that the stream is running",
}


class VideoFrames(FrameSource):
    """A video file (``target`` its path), a camera (an index) or a stream (a URL) read by ``cv2.VideoCapture``;
    frames are converted from OpenCV's BGR to RGB. A :class:`DataError` when it does not open or gives no
    frame."""

    def __init__(self, target: str | int, kind: str, name: str, resize: Resize = None) -> None:
        self._cv2 = cv2 = import_cv2()
        self.capture = cv2.VideoCapture(target)
        if not self.capture.isOpened():
            self.capture.release()
            raise DataError(_DOES_NOT_OPEN[kind].format(name=name))
        count = int(self.capture.get(cv2.CAP_PROP_FRAME_COUNT)) if kind == "video" else 0
        super().__init__(name, count if count > 0 else None, resize)
        if kind == "video":
            self.stem = Path(name).stem
        self.kind, self.live = kind, kind != "video"
        fps = float(self.capture.get(cv2.CAP_PROP_FPS))
        self.fps = fps if math.isfinite(fps) and 0 < fps <= 1000 else DEFAULT_FPS

    def _frames(self) -> Iterator[Frame]:
        index, start = 0, None
        while True:
            ok, bgr = self.capture.read()
            if not ok:
                break
            start = time.monotonic() if start is None else start
            seconds = time.monotonic() - start if self.live else index / self.fps
            rgb = Image.fromarray(self._cv2.cvtColor(bgr, self._cv2.COLOR_BGR2RGB))
            yield Frame(index, self.name, rgb, seconds)
            index += 1
        if index == 0:
            raise DataError(f"{self.name}: opened, but no frame could be read; check the file or the device")

    def close(self) -> None:
        self.capture.release()


def source_kind(argument: str) -> str:
    """What a ``multibox detect`` argument names: ``"camera"`` (an integer that is no file), ``"stream"`` (a
    URL), ``"folder"``, ``"video"`` (by suffix) or ``"image"``."""
    path = Path(argument)
    if argument.isdigit() and not path.exists():
        return "camera"
    if _URL.match(argument):
        return "stream"
    if path.is_dir():
        return "folder"
    return "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"


def folder_files(folder: Path, suffixes: Sequence[str], recursive: bool = False) -> list[Path]:
    """The files of ``folder`` (and its subfolders when ``recursive``) ending in ``suffixes``, sorted; a
    :class:`DataError` when there is none."""
    entries = folder.rglob("*") if recursive else folder.iterdir()
    files = sorted(p for p in entries if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        where = "or its subfolders " if recursive else ""
        hint = "" if recursive else ", or --recursive to search its subfolders"
        raise DataError(
            f"{folder} {where}holds no files ending in {' '.join(suffixes)}: choose the endings with --ext "
            f"(e.g. --ext .jpg,.png){hint}"
        )
    return files


def open_camera(index: int, resize: Resize = None) -> VideoFrames:
    """Camera ``index`` (0 is the first)."""
    return VideoFrames(int(index), "camera", f"camera {index}", resize)


def open_sources(
    arguments: Sequence[str],
    camera: int | None = None,
    suffixes: Sequence[str] = IMAGE_SUFFIXES,
    recursive: bool = False,
    resize: Resize = None,
    on_unreadable: Callable[[ImageDecodeError], None] | None = None,
) -> list[FrameSource]:
    """The sources ``arguments`` name (image files, folders, video files, camera indices, stream URLs), and
    camera ``camera``: the still images first, as one :class:`ImageFiles` in the order given (a folder's files
    ending in ``suffixes``, sorted), then each video, camera and stream, opened.

    An image file that cannot be read is left to :class:`ImageFiles` (skipped and named); a :class:`DataError`
    names a missing video or path, a folder without such files, and a video, camera or stream that does not
    open, before any frame is read."""
    suffixes = tuple(s.lower() for s in suffixes)
    stills: list[Path] = []
    videos: list[FrameSource] = []
    try:
        for argument in arguments:
            _add_source(argument, suffixes, recursive, resize, stills, videos)
        if camera is not None:
            videos.append(open_camera(camera, resize))
    except BaseException:
        for source in videos:
            source.close()
        raise
    return ([ImageFiles(stills, resize, on_unreadable)] if stills else []) + videos


def _add_source(argument, suffixes, recursive, resize, stills: list, videos: list) -> None:
    kind, path = source_kind(argument), Path(argument)
    if kind == "camera":
        videos.append(open_camera(int(argument), resize))
    elif kind == "stream":
        videos.append(VideoFrames(argument, "stream", argument, resize))
    elif kind == "folder":
        for file in folder_files(path, suffixes, recursive):
            _add_source(str(file), suffixes, False, resize, stills, videos)
    elif kind == "video":
        if not path.is_file():
            raise DataError(f"{path} does not exist: give a video file, image, folder, camera index or URL")
        videos.append(VideoFrames(str(path), "video", str(path), resize))
    elif path.exists() or path.suffix.lower() in (*IMAGE_SUFFIXES, *suffixes):
        stills.append(path)  # a missing or undecodable image is skipped and named when it is read
    else:
        raise DataError(
            f"{path} does not exist: a source is an image file, a folder, a video file, a camera index or a URL"
        )
