"""Videos the frame and detect tests build with OpenCV: a red square moving right by a known step per frame."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

FRAMES, WIDTH, HEIGHT, FPS = 20, 96, 64, 10.0
SQUARE, STEP, TOP = 16, 4, 20  # side, pixels moved per frame, top row


def square_left(index: int) -> int:
    """The first column of the square in frame ``index``."""
    return STEP * index


def write_video(path: Path, frames: int = FRAMES, fourcc: str = "MJPG", fps: float = FPS) -> Path:
    """A ``WIDTH x HEIGHT`` video of ``frames`` frames: black, a red ``SQUARE`` at ``square_left(i)``."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for index in range(frames):
        bgr = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
        left = square_left(index)
        bgr[TOP : TOP + SQUARE, left : left + SQUARE] = (0, 0, 255)  # OpenCV's order: blue, green, red
        writer.write(bgr)
    writer.release()
    return path


def red_columns(image: Image.Image) -> tuple[int, int]:
    """First and one-past-last column holding red pixels of an RGB image."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    red = (rgb[..., 0] > 128) & (rgb[..., 1] < 100) & (rgb[..., 2] < 100)
    columns = np.flatnonzero(red.any(axis=0))
    return int(columns[0]), int(columns[-1]) + 1


def read_video(path: Path) -> tuple[list[Image.Image], float]:
    """Every frame of a video as RGB images, read with OpenCV alone, and its frames per second."""
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), path
    images = []
    while True:
        ok, bgr = capture.read()
        if not ok:
            break
        images.append(Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])))
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return images, fps
