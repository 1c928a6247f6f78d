"""``multibox detect`` on videos, folders and live sources: a JSON line and an annotated frame per video frame,
in order; --frame-resize, --thresh, --nms, --force-suppress and --data-shape reach the decoding; every mistake
is one line. The detector is an untrained tiny SSD: the tests check the plumbing and the settings' effects,
which need no trained weights."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from multibox.cli import main
from multibox.inference import TorchDetector, detections_to_json
from multibox.inference.annotate import detect_sources
from multibox.inference.frames import Frame, FrameSource
from multibox.model import build_ssd
from tests.checkpoint_helpers import save_model_checkpoint
from tests.video_helpers import FPS, FRAMES, HEIGHT, WIDTH, read_video, write_video

CLASSES = ["a", "b", "c"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_ssd("tiny", len(CLASSES), 64).eval()


@pytest.fixture(scope="module")
def checkpoint(model, tmp_path_factory) -> str:
    return save_model_checkpoint(model, "tiny", CLASSES, 64, tmp_path_factory.mktemp("ckpt") / "tiny.pt")


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("video") / "moving.avi")


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    pixels = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.fromarray(pixels).save(path)
    return path


def _detect(*arguments: str, out) -> int:
    return main(["detect", *map(str, arguments), "--out", str(out), "--device", "cpu", "--no-window"])


def _rows(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_video_gives_a_json_line_and_an_annotated_frame_per_frame_in_order(
    checkpoint, video, photo, tmp_path
):
    out = tmp_path / "out"
    assert _detect(video, photo, "--checkpoint", checkpoint, "--thresh", "0.2", out=out) == 0
    rows = _rows(out / "detections.jsonl")
    assert [r["frame"] for r in rows] == list(range(FRAMES))
    assert [r["time"] for r in rows] == [round(i / FPS, 3) for i in range(FRAMES)]
    assert {(r["source"], r["width"], r["height"]) for r in rows} == {(str(video), WIDTH, HEIGHT)}
    frames, _ = read_video(video)  # read by OpenCV alone: each line holds its own frame's detections
    expected = TorchDetector(checkpoint).predict(frames, threshold=0.2)
    assert [r["detections"] for r in rows] == [detections_to_json(d, CLASSES) for d in expected]
    assert len({json.dumps(r["detections"]) for r in rows}) > 1  # the frames differ, so would a shuffle
    written, fps = read_video(out / "moving.mp4")
    assert len(written) == FRAMES and fps == pytest.approx(FPS) and written[0].size == (WIDTH, HEIGHT)
    (still,) = json.loads((out / "detections.json").read_text())  # the image beside it, as before
    assert still["image"] == str(photo) and (still["width"], still["height"]) == (80, 60)
    assert sorted(p.name for p in out.iterdir()) == [
        "detections.json",
        "detections.jsonl",
        "moving.mp4",
        "photo.png",
    ]


def test_frame_resize_detects_on_and_writes_the_resized_frames(checkpoint, video, tmp_path):
    out = tmp_path / "half"
    assert (
        _detect(video, "--checkpoint", checkpoint, "--thresh", "0.2", "--frame-resize", "0.5", out=out) == 0
    )
    rows = _rows(out / "detections.jsonl")
    assert len(rows) == FRAMES and {(r["width"], r["height"]) for r in rows} == {(WIDTH // 2, HEIGHT // 2)}
    boxes = np.array([d["box"] for r in rows for d in r["detections"]])
    assert len(boxes) and boxes[:, [0, 2]].max() <= WIDTH // 2 and boxes[:, [1, 3]].max() <= HEIGHT // 2
    written, _ = read_video(out / "moving.mp4")
    assert len(written) == FRAMES and {im.size for im in written} == {(WIDTH // 2, HEIGHT // 2)}
    odd = tmp_path / "odd"  # MPEG-4 needs even sizes: a black column and row are added, the boxes stay put
    assert _detect(video, "--checkpoint", checkpoint, "--frame-resize", "45,31", out=odd) == 0
    assert {im.size for im in read_video(odd / "moving.mp4")[0]} == {(46, 32)}


def _iou(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``(K, K)`` IoU of ``(K, 4)`` corner boxes, computed here by hand."""
    x1 = np.maximum(first[:, None, 0], second[None, :, 0])
    y1 = np.maximum(first[:, None, 1], second[None, :, 1])
    x2 = np.minimum(first[:, None, 2], second[None, :, 2])
    y2 = np.minimum(first[:, None, 3], second[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])  # noqa: E731
    union = area(first)[:, None] + area(second)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _largest_overlap(detections: list[dict], same_class: bool) -> float:
    """The largest IoU between two detections of the same class (or of different classes)."""
    boxes = np.array([d["box"] for d in detections])
    labels = np.array([d["class_id"] for d in detections])
    iou = _iou(boxes, boxes)
    pairs = (labels[:, None] == labels[None, :]) == same_class
    np.fill_diagonal(pairs, False)
    return float(iou[pairs].max()) if pairs.any() else 0.0


def _detections(checkpoint, photo, out, *options) -> list[dict]:
    assert _detect(photo, "--checkpoint", checkpoint, *options, out=out) == 0
    (entry,) = json.loads((out / "detections.json").read_text())
    return entry["detections"]


def test_thresh_nms_and_force_suppress_reach_the_decoding(checkpoint, photo, tmp_path):
    plain = _detections(checkpoint, photo, tmp_path / "plain", "--thresh", "0.2")
    assert min(d["score"] for d in plain) >= 0.2 and len(plain) > 10
    assert 0.2 < _largest_overlap(plain, same_class=True) < 0.45 + 1e-3  # the checkpoint's NMS: 0.45
    assert _largest_overlap(plain, same_class=False) > 0.45  # classes are suppressed on their own

    higher = _detections(checkpoint, photo, tmp_path / "higher", "--thresh", "0.3")
    assert min(d["score"] for d in higher) >= 0.3 and len(higher) < len(plain)
    tight = _detections(checkpoint, photo, tmp_path / "tight", "--thresh", "0.2", "--nms", "0.2")
    assert _largest_overlap(tight, same_class=True) < 0.2 + 1e-3  # where plain had pairs above 0.2
    across = _detections(checkpoint, photo, tmp_path / "across", "--thresh", "0.2", "--force-suppress")
    assert max(_largest_overlap(across, True), _largest_overlap(across, False)) < 0.45 + 1e-3


def test_data_shape_runs_the_network_at_that_input_size(model, checkpoint, photo, tmp_path):
    found = _detections(checkpoint, photo, tmp_path / "at96", "--thresh", "0.2", "--data-shape", "96")
    at_96 = build_ssd("tiny", len(CLASSES), 96).eval()  # the same weights, built for 96 px by hand
    at_96.load_state_dict(model.state_dict())
    image = torch.from_numpy(np.array(Image.open(photo))).permute(2, 0, 1)
    (expected,) = at_96.predict([image], threshold=0.2)
    ours = sorted((d["class_id"], d["score"], *d["box"]) for d in found)
    theirs = sorted(
        (int(c), round(float(s), 4), *(round(float(v), 2) for v in b))
        for c, s, b in zip(expected["labels"], expected["scores"], expected["boxes"], strict=True)
    )
    assert len(ours) == len(theirs) > 0
    np.testing.assert_allclose(np.array(ours), np.array(theirs), atol=0.011)
    at_64 = _detections(checkpoint, photo, tmp_path / "at64", "--thresh", "0.2")
    assert ours != sorted((d["class_id"], d["score"], *d["box"]) for d in at_64)  # the option changed the run


class _Camera(FrameSource):
    """A live source whose user presses Ctrl-C after its ``images``."""

    kind, live = "camera", True  # and no frame rate of its own

    def __init__(self, images: list[Image.Image]) -> None:
        super().__init__("camera 0", None)
        self.images = images

    def _frames(self):
        for index, image in enumerate(self.images):
            yield Frame(index, self.name, image, index / 25)
        raise KeyboardInterrupt


def test_ctrl_c_ends_a_camera_with_everything_it_read_written(checkpoint, video, tmp_path):
    camera = _Camera(read_video(video)[0][:3])
    run = detect_sources(
        TorchDetector(checkpoint), [camera], tmp_path, threshold=0.2, window=False, report=str
    )
    assert run.stopped == "Ctrl-C" and run.frames == 3
    assert [r["frame"] for r in _rows(tmp_path / "detections.jsonl")] == [0, 1, 2]
    written, fps = read_video(tmp_path / "camera_0.mp4")
    assert len(written) == 3 and fps == pytest.approx(25.0)  # a camera that gives no rate: 25 frames/s


def test_ctrl_c_during_a_video_file_ends_the_run_with_its_files_closed(checkpoint, video, tmp_path):
    clip = _Camera(read_video(video)[0][:10])
    clip.kind, clip.live, clip.name, clip.stem = "video", False, "clip.avi", "clip"
    said = []
    with pytest.raises(KeyboardInterrupt):
        detect_sources(TorchDetector(checkpoint), [clip], tmp_path, window=False, report=said.append)
    assert len(_rows(tmp_path / "detections.jsonl")) == 8  # the first batch of 8 frames, complete
    assert len(read_video(tmp_path / "clip.mp4")[0]) == 8
    assert said == [
        f"clip.avi: interrupted after 8 frames, written to {tmp_path / 'clip.mp4'} and detections.jsonl"
    ]


@pytest.mark.parametrize(
    "arguments, code, named",
    [
        (["{tmp}/gone.mp4"], 1, "{tmp}/gone.mp4 does not exist"),
        (["{tmp}/broken.mp4"], 1, "{tmp}/broken.mp4"),
        (["{tmp}/empty"], 1, "{tmp}/empty holds no files ending in"),
        (["--camera", "97"], 1, "camera 97 did not open"),
        ([], 2, "the following arguments are required: SOURCE"),
        (["{photo}", "--frame-resize", "0"], 2, "--frame-resize: 0 is not > 0"),
        (["{photo}", "--data-shape", "big"], 2, "--data-shape: 'big' is not an integer"),
        (["{photo}", "--ext", ","], 2, "--ext: ',' names no file ending"),
        (["{tmp}/a/x.png", "{tmp}/b/x.png"], 2, "would both be written to"),
        (["{tmp}/a/x.png", "--out", "{tmp}/a"], 2, "would replace the input {tmp}/a/x.png"),
    ],
)
def test_a_mistake_is_one_line(arguments, code, named, checkpoint, photo, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is no video" * 10)
    (tmp_path / "empty").mkdir()
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        Image.new("RGB", (8, 8)).save(tmp_path / folder / "x.png")
    fill = {"tmp": str(tmp_path), "photo": str(photo)}
    argv = ["detect", *(a.format(**fill) for a in arguments), "--checkpoint", checkpoint, "--no-window"]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    try:
        returned = main(argv)
    except SystemExit as exit_:
        returned = exit_.code
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert named.format(**fill) in errors[0] and returned == code, (returned, errors[0])


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    from multibox.deploy import export_checkpoint

    return export_checkpoint(
        checkpoint, "torchscript", out=tmp_path_factory.mktemp("ts") / "tiny.torchscript"
    ).path


def test_an_exported_file_refuses_what_was_fixed_at_export(exported, photo, tmp_path, capsys):
    base = [
        "detect",
        str(photo),
        "--torchscript",
        str(exported),
        "--out",
        str(tmp_path / "out"),
        "--no-window",
    ]
    assert main([*base, "--data-shape", "96"]) == 2
    assert "takes 64x64 inputs, fixed at export" in capsys.readouterr().err
    assert main([*base, "--nms", "0.3"]) == 2
    assert "was exported with nms_threshold=0.45" in capsys.readouterr().err
    assert (
        main([*base, "--data-shape", "64", "--nms", "0.45", "--thresh", "0.2"]) == 0
    )  # what it holds is fine
