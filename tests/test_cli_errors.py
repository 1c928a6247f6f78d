"""Every subcommand, given a bad argument, setting or file, ends in one line naming it: no traceback,
exit code 2 for usage and settings, 1 for data and files."""

import os
from pathlib import Path

import pytest
import torch

from multibox.cli import main


class RunsACommand:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_files")
    text = root / "notes.txt"
    text.write_text("not a model\n")
    garbage = root / "garbage.pt"
    garbage.write_bytes(bytes(range(256)) * 16)
    evil = root / "evil.pt"
    torch.save({"model": {}, "network": {}, "class_names": [], "x": RunsACommand(root / "it_ran")}, evil)
    foreign = root / "foreign.pt"
    torch.save({"conv.weight": torch.zeros(2)}, foreign)
    fake_onnx = root / "model.onnx"
    fake_onnx.write_bytes(b"\x08\x07garbage that is not a protobuf model")
    fake_ts = root / "model.torchscript"
    fake_ts.write_bytes(b"PK\x03\x04 broken zip")
    bad_yaml = root / "bad.yaml"
    bad_yaml.write_text("lr: [0.1\nepochs: 3\n")
    typed_yaml = root / "typed.yaml"
    typed_yaml.write_text("epochs: three\n")
    image = root / "photo.jpg"
    from PIL import Image

    Image.new("RGB", (40, 30), (10, 200, 30)).save(image)
    return {
        "text": text,
        "garbage": garbage,
        "evil": evil,
        "foreign": foreign,
        "onnx": fake_onnx,
        "ts": fake_ts,
        "bad_yaml": bad_yaml,
        "typed_yaml": typed_yaml,
        "image": image,
        "root": root,
    }


CASES = [
    # (arguments, exit code, what the line must name)
    (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    (["detect"], 2, "the following arguments are required"),
    (["detect", "{image}", "--checkpoint", "{garbage}"], 1, "{garbage} is not a file torch.save wrote"),
    (["detect", "{image}", "--checkpoint", "{evil}"], 1, "refused to load checkpoint {evil}"),
    (["detect", "{image}", "--checkpoint", "{foreign}"], 1, "not a multibox training checkpoint"),
    (["detect", "{image}", "--checkpoint", "{root}/missing.pt"], 1, "missing.pt does not exist"),
    (["detect", "{image}", "--onnx", "{onnx}"], 1, "not an ONNX model"),
    (["detect", "{image}", "--torchscript", "{ts}"], 1, "not a TorchScript file"),
    (["detect", "{image}", "--checkpoint", "{garbage}", "--thresh", "2"], 2, "--thresh: 2 is outside [0, 1]"),
    (["evaluate", "--checkpoint", "{garbage}", "--data", "shapes:4"], 1, "is not a file torch.save wrote"),
    (["evaluate", "--checkpoint", "{evil}", "--data", "shapes:4"], 1, "refused to load"),
    (["evaluate", "--checkpoint", "{garbage}", "--data", "shapes:4", "--nms", "0"], 2, "--nms: 0 is outside"),
    (
        ["evaluate", "--checkpoint", "{garbage}", "--data", "x", "--batch-size", "0"],
        2,
        "--batch-size: 0 is not >= 1",
    ),
    (["export", "{garbage}"], 1, "is not a file torch.save wrote"),
    (["export", "{evil}", "--format", "torchscript"], 1, "refused to load"),
    (["export", "{garbage}", "--nms", "abc"], 2, "--nms: 'abc' is not a number"),
    (["serve", "{garbage}", "--port", "70000"], 2, "--port: 70000 is outside 1-65535"),
    (["serve", "{garbage}", "--port", "-1"], 2, "--port"),
    (["serve", "{evil}", "--port", "8123"], 1, "refused to load"),
    (["serve", "{onnx}", "--port", "8123"], 1, "not an ONNX model"),
    (["train", "epochs=0"], 2, "epochs must be >= 1, got 0"),
    (["train", "batch_size=-3"], 2, "batch_size must be >= 1, got -3"),
    (["train", "lr=fast"], 2, "lr expects a number"),
    (["train", "data_shape=big"], 2, "data_shape expects an integer"),
    (["train", "--config", "{bad_yaml}"], 2, "is not valid YAML at line 2"),
    (["train", "--config", "{typed_yaml}"], 2, "epochs expects an integer or null, got 'three'"),
    (["train", "--config", "{root}/none.yaml"], 1, "none.yaml does not exist"),
    (["train", "train_data={root}/no_such_dir"], 1, "no_such_dir does not exist"),
    (
        ["train", "network=vgg16_reduced", "data_shape=64", "train_data=shapes:4"],
        2,
        "data_shape 64x64 is too small",
    ),
    (
        ["train", "train_data=shapes:4", "network=tiny", "data_shape=64", "weights_backbone={evil}"],
        1,
        "refused to load backbone weights {evil}: it holds Python objects",
    ),
    (
        ["train", "train_data=shapes:4", "network=tiny", "data_shape=64", "weights_backbone={foreign}"],
        1,
        "weights do not fit tiny: missing",
    ),
    (
        ["train", "train_data=shapes:4", "network=tiny", "data_shape=64", "weights_backbone={root}/no.pth"],
        1,
        "weights file not found: {root}/no.pth",
    ),
    (["quickstart", "--time-budget", "-5"], 2, "--time-budget: -5 is not > 0"),
    (["data", "check", "{root}/nothing"], 1, "nothing does not exist"),
    (["data", "check", "{text}"], 2, "cannot tell the format"),
    (["data", "check", "shapes:4", "--examples", "x"], 2, "--examples: 'x' is not an integer"),
    (["data", "convert", "{root}/nothing", "{root}/out", "--to", "voc"], 1, "nothing does not exist"),
    (["inspect", "model", "resnet18"], 2, "resnet18"),
    (["inspect", "model", "vgg16_reduced", "--data-shape", "40"], 2, "too small"),
]


@pytest.mark.parametrize("arguments, code, named", CASES, ids=[" ".join(c[0][:3]) for c in CASES])
def test_a_mistake_is_one_line_with_the_right_exit_code(arguments, code, named, files, capsys, tmp_path):
    fill = {k: str(v) for k, v in files.items()}
    argv = [a.format(**fill) for a in arguments]
    os.chdir(tmp_path)  # anything a command writes by default lands here
    try:
        returned = main(argv)
    except SystemExit as exit_:
        returned = exit_.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    errors = [line for line in captured.err.splitlines() if "error:" in line]
    assert len(errors) == 1, captured.err
    assert named.format(**fill) in errors[0], errors[0]
    assert "report it" not in errors[0]  # a user's mistake, not a bug to report
    assert returned == code, (returned, errors[0])
    assert not (files["root"] / "it_ran").exists()


def test_debug_shows_the_traceback(files, capsys):
    with pytest.raises(Exception, match="is not a file torch.save wrote"):
        main(["--debug", "export", str(files["garbage"])])
