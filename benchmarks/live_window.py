"""``multibox detect``'s live window on a real X display, checked by hand (CI has no display and the headless
OpenCV): Xvfb, OpenCV's GUI build, ``multibox detect`` on a clip made of a dataset's images. It reports whether a
window titled "multibox detect" was mapped while the clip played, saves a screenshot of it, and prints detect's
own lines.

Needs Xvfb, xwininfo and xwd (Debian: ``apt-get install xvfb x11-apps``) and OpenCV with a GUI: ``pip install
opencv-python``, or ``--opencv-gui DIR``, a folder holding it (``pip install --no-deps --target DIR
opencv-python``) that goes before the virtualenv's headless build on the path.

    python benchmarks/live_window.py --checkpoint runs/bccd/checkpoints/last.pt \
        --images ../shared/datasets/bccd/JPEGImages --opencv-gui /tmp/cvgui --out live_window.png
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from multibox.data.image_io import IMAGE_SUFFIXES
from multibox.inference import read_image

TITLE = "multibox detect"
DISPLAY = ":99"


def make_clip(images: Path, path: Path, count: int, hold: int, size: tuple[int, int]) -> Path:
    """An MJPG clip of the first ``count`` images of ``images`` (sorted), each held for ``hold`` frames."""
    import cv2

    files = sorted(p for p in images.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, size)
    for file in files:
        rgb = np.asarray(read_image(file).resize(size, Image.BILINEAR))
        for _ in range(hold):
            writer.write(np.ascontiguousarray(rgb[..., ::-1]))
    writer.release()
    return path


def start_display() -> subprocess.Popen:
    """Xvfb on :99, waited for until its socket exists."""
    server = subprocess.Popen(["Xvfb", DISPLAY, "-screen", "0", "1024x768x24", "-nolisten", "tcp"])
    socket = Path("/tmp/.X11-unix/X" + DISPLAY[1:])
    for _ in range(100):
        if socket.exists():
            return server
        time.sleep(0.1)
    server.kill()
    raise SystemExit("Xvfb did not start")


def window_geometry(env: dict) -> tuple[int, int, int, int] | None:
    """(x, y, width, height) of the mapped window titled :data:`TITLE`, or None."""
    found = subprocess.run(["xwininfo", "-name", TITLE], env=env, capture_output=True, text=True)
    if found.returncode != 0 or "IsViewable" not in found.stdout:
        return None
    keys = ("Absolute upper-left X", "Absolute upper-left Y", "Width", "Height")
    return tuple(int(re.search(rf"{key}:\s+(-?\d+)", found.stdout).group(1)) for key in keys)


def read_xwd(data: bytes) -> Image.Image:
    """The RGB picture of an ``xwd`` dump of a 24- or 32-bit TrueColor screen (X11's XWD format, version 7)."""
    header = np.frombuffer(data[:100], ">u4")
    header_size, width, height = int(header[0]), int(header[4]), int(header[5])
    byte_order, bits_per_pixel, bytes_per_line = int(header[7]), int(header[11]), int(header[12])
    masks, colours = header[14:17], int(header[19])
    if bits_per_pixel not in (24, 32):
        raise SystemExit(f"xwd: {bits_per_pixel} bits per pixel, expected 24 or 32")
    start, size = header_size + 12 * colours, bits_per_pixel // 8
    rows = np.frombuffer(data[start : start + height * bytes_per_line], np.uint8).reshape(
        height, bytes_per_line
    )
    pixel_bytes = rows[:, : width * size].reshape(height, width, size).astype(np.uint32)
    order = range(size) if byte_order == 0 else reversed(range(size))  # 0: least significant byte first
    pixels = sum(pixel_bytes[..., i] << (8 * shift) for shift, i in enumerate(order))
    channels = [(pixels & m) >> (int(m).bit_length() - 8) for m in masks]
    return Image.fromarray(np.stack(channels, axis=-1).astype(np.uint8))


def screenshot(env: dict, box: tuple[int, int, int, int]) -> Image.Image:
    dump = subprocess.run(["xwd", "-root", "-silent"], env=env, capture_output=True, check=True).stdout
    x, y, width, height = box
    return read_xwd(dump).crop((x, y, x + width, y + height))


def watch(detect: subprocess.Popen, env: dict, every: float) -> tuple[tuple | None, Image.Image | None]:
    """Poll for the window while ``detect`` runs, taking a screenshot of it every ``every`` seconds; the last one
    is kept (the window closes when the clip ends)."""
    seen, shot, last_shot = None, None, 0.0
    while detect.poll() is None:
        box = window_geometry(env)
        if box is not None:
            seen = box
            if time.monotonic() - last_shot >= every:
                try:
                    shot, last_shot = screenshot(env, box), time.monotonic()
                except subprocess.CalledProcessError:  # the window went while the screen was read
                    pass
        time.sleep(0.2)
    return seen, shot


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--images", required=True, help="a folder of images the clip is made of")
    parser.add_argument("--opencv-gui", help="a folder holding OpenCV's GUI build (put first on the path)")
    parser.add_argument("--frames", type=int, default=8, help="images in the clip")
    parser.add_argument("--hold", type=int, default=15, help="frames each image is held")
    parser.add_argument("--shot-every", type=float, default=1.0, help="seconds between screenshots")
    parser.add_argument("--out", default="live_window.png", help="the screenshot")
    args = parser.parse_args()
    env = {**os.environ, "DISPLAY": DISPLAY, "QT_QPA_PLATFORM": "xcb"}
    if args.opencv_gui:  # the GUI build first, here (for the clip) and in detect's process
        sys.path.insert(0, args.opencv_gui)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [args.opencv_gui, env.get("PYTHONPATH")]))
    server = start_display()
    try:
        with tempfile.TemporaryDirectory() as folder:
            clip = make_clip(Path(args.images), Path(folder) / "clip.avi", args.frames, args.hold, (480, 360))
            command = [sys.executable, "-m", "multibox", "detect", str(clip), "--checkpoint", args.checkpoint]
            command += ["--out", str(Path(folder) / "out")]
            detect = subprocess.Popen(
                command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
            seen, shot = watch(detect, env, args.shot_every)
            output = detect.stdout.read()
    finally:
        server.kill()
    print(output.rstrip())
    print(f"detect exit code {detect.returncode}; window {TITLE!r} mapped: {seen is not None}", end="")
    print(f" at {seen}" if seen else "")
    if shot is not None:
        shot.save(args.out)
        print(f"screenshot {shot.size[0]}x{shot.size[1]} -> {args.out}")


if __name__ == "__main__":
    main()
