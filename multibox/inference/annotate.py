"""A detector on every frame of :mod:`multibox.inference.frames` sources, its detections drawn and written.

Still images: an annotated copy of each in ``out`` and ``detections.json`` (a list of ``{"image", "width",
"height", "detections"}``). Videos, cameras and streams: an annotated ``<stem>.mp4`` each (the source's frames
per second) and ``detections.jsonl``, one JSON object per frame ``{"source", "frame", "time", "width",
"height", "detections"}``, flushed as it is written; where a display exists, a live window of the annotated
frames. Detections are :func:`~multibox.inference.detections_to_json` rows, drawn by
:func:`multibox.viz.draw_detections`.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from multibox.errors import ConfigError, DataError
from multibox.inference.detections import Detections, Detector, detections_to_json
from multibox.inference.frames import DEFAULT_FPS, Frame, FrameSource, import_cv2
from multibox.viz import draw_detections


@dataclass
class DetectRun:
    """What :func:`detect_sources` did: ``images`` annotated, video ``frames`` annotated, the ``videos``
    written, and why it ``stopped`` before the end (``"Ctrl-C"``, ``"q"``; None when it did not)."""

    images: int = 0
    frames: int = 0
    videos: list[Path] = field(default_factory=list)
    stopped: str | None = None


def detect_sources(
    detector: Detector,
    sources: Sequence[FrameSource],
    out: str | Path,
    threshold: float | None = None,
    window: bool = True,
    report: Callable[[str], Any] = print,
) -> DetectRun:
    """Run ``detector`` (score >= ``threshold``, default its own) on every frame of ``sources`` and write the
    annotated images and videos, ``detections.json`` and ``detections.jsonl`` into ``out``; a line per image
    and per video goes to ``report``. ``window`` shows videos, cameras and streams live where a display exists.

    Refuses (:class:`ConfigError`, before writing) two inputs that would be written to the same file, or an
    output that would replace its input. Ctrl-C ends a camera or stream normally (what it read is written);
    during a video file it ends the run after closing the files."""
    out = Path(out)
    _check_outputs(sources, out)
    out.mkdir(parents=True, exist_ok=True)
    run = DetectRun()
    live = LiveWindow.open() if window and any(s.kind != "images" for s in sources) else None
    jsonl: IO[str] | None = None
    try:
        for source in sources:
            if source.kind == "images":
                run.images += _detect_stills(detector, source, out, threshold, report)
                continue
            jsonl = jsonl or (out / "detections.jsonl").open("w")
            _detect_video(detector, source, out, threshold, jsonl, live, report, run)
            if run.stopped:
                break
    finally:
        if jsonl is not None:
            jsonl.close()
        if live is not None:
            live.close()
    if run.videos:
        report(f"annotated videos and detections.jsonl in {out}")
    return run


def output_path(source: FrameSource, out: Path) -> Path:
    """The annotated video written for a video, camera or stream ``source``."""
    return out / f"{source.stem}.mp4"


def _planned_outputs(sources: Sequence[FrameSource], out: Path) -> Iterator[tuple[str, Path]]:
    for source in sources:
        if source.kind == "images":
            yield from ((str(path), out / path.name) for path in source.paths)
        else:
            yield source.name, output_path(source, out)


def _check_outputs(sources: Sequence[FrameSource], out: Path) -> None:
    writers: dict[Path, str] = {}
    for name, path in _planned_outputs(sources, out):
        if path in writers and writers[path] != name:
            raise ConfigError(
                f"{writers[path]} and {name} would both be written to {path}: rename one, or detect each "
                "with its own --out"
            )
        writers[path] = name
        if path.exists() and Path(name).exists() and path.resolve() == Path(name).resolve():
            raise ConfigError(
                f"--out {out} would replace the input {name} with its annotated copy: choose another --out"
            )


def _batches(frames: Iterable[Frame], size: int) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _batch_size(detector: Detector) -> int:
    """Frames per ``predict`` call: the detector's own batch size (a fixed-batch export's), else 8."""
    return getattr(detector, "batch_size", None) or 8


def _drawn(frame: Frame, found: Detections, class_names: Sequence[str]) -> Image.Image:
    return draw_detections(frame.image, found["boxes"], found["labels"], found["scores"], class_names)


def _detect_stills(detector: Detector, source: FrameSource, out: Path, threshold, report) -> int:
    """Annotated copies and ``detections.json``; the number of images annotated."""
    rows = []
    for batch in _batches(source, _batch_size(detector)):
        for frame, found in zip(batch, detector.predict([f.image for f in batch], threshold), strict=True):
            _drawn(frame, found, detector.class_names).save(out / Path(frame.name).name)
            rows.append(
                {
                    "image": frame.name,
                    "width": frame.image.width,
                    "height": frame.image.height,
                    "detections": detections_to_json(found, detector.class_names),
                }
            )
            report(f"{frame.name}: {len(found['labels'])} objects")
    (out / "detections.json").write_text(json.dumps(rows, indent=2) + "\n")
    report(f"annotated images and detections.json in {out}")
    return len(rows)


def _frame_row(frame: Frame, found: Detections, class_names: Sequence[str]) -> dict:
    return {
        "source": frame.name,
        "frame": frame.index,
        "time": round(float(frame.time or 0.0), 3),
        "width": frame.image.width,
        "height": frame.image.height,
        "detections": detections_to_json(found, class_names),
    }


def _detect_video(detector, source, out, threshold, jsonl: IO[str], live, report, run: DetectRun) -> None:
    """Annotated video + JSON lines of one video, camera or stream; ``run`` counts its frames and why it
    stopped."""
    from tqdm import tqdm

    path = output_path(source, out)
    writer = VideoWriter(path, source.fps)
    bar = tqdm(
        total=source.count, desc=source.name, unit="frame", leave=False, disable=not sys.stderr.isatty()
    )
    frames, objects, started = 0, 0, time.monotonic()
    try:
        # one frame at a time for a live source (no waiting) or under the window (smooth, its rate true)
        one_by_one = source.live or live is not None
        for batch in _batches(source, 1 if one_by_one else _batch_size(detector)):
            found_in_batch = detector.predict([f.image for f in batch], threshold)
            for frame, found in zip(batch, found_in_batch, strict=True):
                drawn = _drawn(frame, found, detector.class_names)
                writer.write(drawn)
                jsonl.write(json.dumps(_frame_row(frame, found, detector.class_names)) + "\n")
                jsonl.flush()
                frames, objects = frames + 1, objects + len(found["labels"])
                bar.update()
                if live is not None and not live.show(drawn):
                    run.stopped = "q"
                    break
            if run.stopped:
                break
    except KeyboardInterrupt:
        run.stopped = "Ctrl-C"
        if not source.live:
            report(
                f"{source.name}: interrupted after {frames} frames, written to {path} and detections.jsonl"
            )
            raise
    finally:
        bar.close()
        writer.close()
    run.frames += frames
    run.videos.append(path)
    rate = frames / max(time.monotonic() - started, 1e-9)
    stopped = f", stopped by {run.stopped}" if run.stopped else ""
    report(f"{source.name}: {frames} frames, {objects} objects, {rate:.1f} frames/s{stopped} -> {path}")


class VideoWriter:
    """An MP4 (``mp4v``) file of RGB frames at ``fps``, opened at the first frame, whose size it takes (a later
    frame of another size is resized to it). MPEG-4 needs an even width and height: an odd one gets a black
    column or row at the right or bottom, so the frame's pixel coordinates stay those of the detections."""

    def __init__(self, path: Path, fps: float | None) -> None:
        self.path, self.fps = Path(path), fps or DEFAULT_FPS
        self.size: tuple[int, int] | None = None
        self._writer = None
        self._cv2 = import_cv2()

    def write(self, image: Image.Image) -> None:
        cv2 = self._cv2
        if self._writer is None:
            self.size = image.size
            even = (image.width + image.width % 2, image.height + image.height % 2)
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, even)
            if not self._writer.isOpened():
                raise DataError(f"{self.path}: OpenCV could not write an MP4 video here; check the folder")
        if image.size != self.size:
            image = image.resize(self.size, Image.BILINEAR)
        bgr = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)
        width, height = self.size
        bgr = cv2.copyMakeBorder(bgr, 0, height % 2, 0, width % 2, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        self._writer.write(bgr)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


class LiveWindow:
    """An OpenCV window of the annotated frames with the frames per second; ``q`` or Esc asks to stop."""

    title = "multibox detect"

    def __init__(self, cv2: Any) -> None:
        self._cv2 = cv2
        self.fps = 0.0
        self._last: float | None = None  # when the last frame was shown; None before the first

    @classmethod
    def open(cls) -> LiveWindow | None:
        """A window where a display exists (``DISPLAY`` or ``WAYLAND_DISPLAY``, or Windows / macOS) and OpenCV
        has a GUI; None elsewhere (the headless build, a server), without an error."""
        display = os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
        if not display and sys.platform not in ("win32", "darwin"):
            return None
        cv2 = import_cv2()
        try:
            # resizable, keeping the frame's aspect, without the Qt build's toolbar
            cv2.namedWindow(cls.title, cv2.WINDOW_NORMAL | cv2.WINDOW_KEEPRATIO | cv2.WINDOW_GUI_NORMAL)
        except cv2.error:  # built without GUI support ("The function is not implemented")
            return None
        return cls(cv2)

    def show(self, image: Image.Image) -> bool:
        """Show ``image`` with the frames per second; False when the user pressed ``q`` or Esc or closed it."""
        cv2, now = self._cv2, time.monotonic()
        if self._last is None:  # the window opens at the first frame's size, not the toolkit's default
            cv2.resizeWindow(self.title, image.width, image.height)
        elif now > self._last:
            rate = 1.0 / (now - self._last)
            self.fps = rate if self.fps == 0 else 0.9 * self.fps + 0.1 * rate
        self._last = now
        bgr = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)
        cv2.putText(bgr, f"{self.fps:.1f} fps", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 255, 0), 2)
        cv2.imshow(self.title, bgr)
        key = cv2.waitKey(1) & 0xFF
        return key not in (ord("q"), 27) and cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1

    def close(self) -> None:
        self._cv2.destroyWindow(self.title)
        self._cv2.waitKey(1)
