"""``multibox weights list / import``: a torchvision state dict becomes a checkpoint every door reads, and every
wrong or mismatched file ends in one line (no network: downloads are made to fail)."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import pytest
import torch
import torchvision
from PIL import Image

import multibox
from multibox.cli import main
from multibox.inference import load_checkpoint_model
from multibox.inference.pretrained import PRETRAINED

TINY_PARAMS = Path(__file__).parent / "fixtures" / "mxnet_params" / "tiny-0000.params"  # MXNet wrote it
MXNET_VGG300 = ["--network", "vgg16_reduced", "--data-shape", "300", "--class-names", "{text}"]


@pytest.fixture(scope="module")
def ssdlite_file(tmp_path_factory):
    """torchvision's SSDLite320 state dict, as the file at its weights' URL would hold (random weights)."""
    torch.manual_seed(0)
    model = torchvision.models.detection.ssdlite320_mobilenet_v3_large(weights=None, weights_backbone=None)
    path = tmp_path_factory.mktemp("tv") / "ssdlite320_coco.pth"
    torch.save(model.state_dict(), path)
    return path


def test_list_names_every_source_with_its_published_accuracy_and_licence(capsys):
    assert main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    for name, source in PRETRAINED.items():
        assert name in out and source.published in out and source.licence in out
    assert "box AP 25.1" in out and "VOC07 test mAP 77.8" in out


def test_a_torchvision_file_becomes_a_checkpoint_that_detect_and_python_read(ssdlite_file, tmp_path, capsys):
    out = tmp_path / "ssdlite.pt"
    code = main(
        ["weights", "import", str(ssdlite_file), "--from", "torchvision:ssdlite320_mobilenet_v3_large"]
        + ["--out", str(out), "--num-classes", "90"]
    )
    assert code == 0
    said = capsys.readouterr().out
    assert (
        f"wrote {out}: torchvision_ssdlite320_mobilenet_v3_large at 320 px, 90 classes (person, bicycle"
        in said
    )
    assert "NMS 0.55, top 300, 300 per image" in said  # SSDLite's own post-processing, not SSD300's
    model, names, network = load_checkpoint_model(out)
    assert network["name"] == "torchvision_ssdlite320_mobilenet_v3_large" and len(names) == 90
    pretrained = multibox.from_pretrained(
        out
    )  # the front door: multibox.inference.pretrained.from_pretrained
    assert pretrained.class_names == names and not pretrained.training
    photo = tmp_path / "photo.jpg"
    Image.new("RGB", (200, 150), (120, 90, 60)).save(photo)
    assert main(["detect", str(photo), "--checkpoint", str(out), "--out", str(tmp_path / "det")]) == 0
    assert (tmp_path / "det" / "detections.json").is_file()


@pytest.mark.parametrize(
    ("arguments", "code", "named"),
    [
        (["{ssdlite}", "--from", "torchvision:ssd300_vgg16"], 1, "ssd300_vgg16"),
        (["{text}", "--from", "torchvision:ssd300_vgg16"], 1, "is not a file torch.save wrote"),
        (["{text}"], 2, "say what"),
        (["{text}", "--from", "caffe"], 2, "--from 'caffe': use torchvision:ARCH or mxnet"),
        (["{root}/none.pth", "--from", "torchvision:ssd300_vgg16"], 1, "none.pth does not exist"),
        (
            ["{ssdlite}", "--from", "torchvision:ssdlite320_mobilenet_v3_large", "--num-classes", "20"],
            2,
            "has 90 classes, not --num-classes 20",
        ),
        (["{root}/m-0000.params", "--from", "mxnet"], 1, "m-0000.params does not exist"),
        (["{params}", "--from", "mxnet"], 2, "needs --network, --data-shape, --class-names"),
        (["torchvision:yolo"], 2, "unknown pretrained source 'torchvision:yolo'"),
        (["{params}", "--from", "mxnet", *MXNET_VGG300], 1, "m-0001.params"),  # damaged bytes
        (
            ["{tiny_params}", "--from", "mxnet", *MXNET_VGG300],
            1,
            "tiny-0000.params",
        ),  # another network's arrays
        (["mxnet:ssd_vgg16_reduced_300"], 2, "is not downloaded by multibox: download the original's model"),
    ],
)
def test_a_wrong_or_mismatched_file_is_one_line(arguments, code, named, ssdlite_file, tmp_path, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not weights\n")
    params = tmp_path / "m-0001.params"
    params.write_bytes(b"\x12\x01" + bytes(30))
    values = {
        "ssdlite": ssdlite_file,
        "text": text,
        "root": tmp_path,
        "params": params,
        "tiny_params": TINY_PARAMS,
    }
    filled = [a.format(**values) for a in arguments]
    assert main(["weights", "import", *filled, "--out", str(tmp_path / "out.pt")]) == code
    err = capsys.readouterr().err
    assert named.format(**values) in err and len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err and not (tmp_path / "out.pt").exists()


def test_an_existing_out_is_never_overwritten_unasked(ssdlite_file, tmp_path, capsys):
    out = tmp_path / "mine.pt"
    out.write_bytes(b"my data")
    arguments = [
        "weights",
        "import",
        str(ssdlite_file),
        "--from",
        "torchvision:ssdlite320_mobilenet_v3_large",
    ]
    assert main([*arguments, "--out", str(out)]) == 2
    assert "exists; choose another --out or add --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"my data"
    assert main([*arguments, "--out", str(out), "--overwrite"]) == 0 and out.read_bytes() != b"my data"


def test_offline_download_says_what_to_fetch(monkeypatch, tmp_path, capsys):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", offline)  # what the weights call
    assert main(["weights", "import", "torchvision:ssd300_vgg16", "--out", str(tmp_path / "x.pt")]) == 1
    err = capsys.readouterr().err
    assert "could not fetch SSD300_VGG16_Weights.COCO_V1" in err
    assert "download https://download.pytorch.org/models/ssd300_vgg16_coco" in err


def test_torch_hub_loads_the_entry_points_from_a_clone(ssdlite_file, tmp_path):
    repo = Path(__file__).resolve().parents[1]
    untrained = torch.hub.load(str(repo), "ssdlite320_mobilenet_v3_large", source="local", pretrained=False)
    assert len(untrained.class_names) == 90 and untrained.data_shape == (320, 320)
    out = tmp_path / "lite.pt"
    assert (
        main(
            ["weights", "import", str(ssdlite_file), "--from", "torchvision:ssdlite320_mobilenet_v3_large"]
            + ["--out", str(out)]
        )
        == 0
    )
    loaded = torch.hub.load(str(repo), "from_checkpoint", source="local", path=str(out))
    expected = load_checkpoint_model(out)[0]
    for name, tensor in expected.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
