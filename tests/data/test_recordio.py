"""MXNet RecordIO (``.rec`` + ``.idx``) against files MXNet 1.9.1 wrote, and MXNet's reading of ours.

The fixture (``tests/fixtures/recordio``, made by ``tests/fixtures/make_recordio_fixture.py`` with MXNet's venv):
``inputs.json`` (image files, sizes, pixel boxes), ``mxnet.rec/.idx`` and ``multipart.rec/.idx`` packed by
``mx.recordio``, ``mxnet_read.json`` (what MXNet read back from them), ``ours.rec/.idx`` (our writer) and
``ours_read_by_mxnet.json`` (what MXNet read from ours).
"""

import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from multibox.cli import main
from multibox.data.formats import detect_format, load_dataset, read_voc, save_dataset
from multibox.data.formats.recordio import read_recordio, write_recordio
from multibox.data.image_io import to_rgb
from multibox.data.records import DetectionDataset, DetectionRecord
from multibox.data.validate import check_dataset
from multibox.errors import ConfigError, DataError, MissingSplitError

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "recordio"
INPUTS = json.loads((FIXTURE / "inputs.json").read_text())
MXNET_READ = json.loads((FIXTURE / "mxnet_read.json").read_text())
NAMES = (FIXTURE / "labels.txt").read_text().split()
MAGIC = struct.pack("<I", 0xCED7230A)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _inputs(items: list[dict]) -> DetectionDataset:
    """The fixture's inputs as records (image files, whole-pixel boxes), read by no reader of ours."""
    records = []
    for index, item in enumerate(items):
        rows = item["objects"]
        boxes, classes, difficult = [r[1:5] for r in rows], [r[0] for r in rows], [r[5] for r in rows]
        records.append(
            DetectionRecord(
                f"in{index}", FIXTURE / item["file"], item["width"], item["height"], boxes, classes, difficult
            )
        )
    return DetectionDataset(records, NAMES)


def _copy(folder: Path, stem: str, index: bool = True) -> Path:
    """The fixture's ``<stem>.rec`` (and ``.idx``) with ``labels.txt``, copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(FIXTURE / f"{stem}.rec", folder / f"{stem}.rec")
    if index:
        shutil.copy(FIXTURE / f"{stem}.idx", folder / f"{stem}.idx")
    shutil.copy(FIXTURE / "labels.txt", folder / "labels.txt")
    return folder / f"{stem}.rec"


def _assert_matches_inputs(dataset: DetectionDataset, items: list[dict]) -> None:
    assert len(dataset) == len(items)
    for record, item in zip(dataset.records, items, strict=True):
        rows = np.array(item["objects"], np.float64)
        assert (record.width, record.height) == (item["width"], item["height"])
        assert record.labels.tolist() == rows[:, 0].astype(int).tolist()
        assert record.difficult.tolist() == (rows[:, 5] > 0).tolist()
        np.testing.assert_allclose(record.boxes, rows[:, 1:5], atol=1e-3)  # float32 corners times the size
        assert _sha(record.image.read_bytes()) == _sha((FIXTURE / item["file"]).read_bytes())


@pytest.mark.parametrize("with_index", [True, False])
def test_reads_the_file_mxnet_wrote(tmp_path, with_index):
    rec = _copy(tmp_path, "mxnet", index=with_index)
    assert detect_format(rec) == "recordio"
    dataset = load_dataset(rec)
    assert dataset.class_names == NAMES and dataset.problems == []
    assert [r.image_id for r in dataset.records] == [str(m["id"]) for m in MXNET_READ["mxnet"]]
    assert dataset.source_ids() == [0, 1, 2, 3, 4]
    _assert_matches_inputs(dataset, INPUTS[:5])
    assert dataset.num_objects == sum(len(i["objects"]) for i in INPUTS[:5])
    assert any(r.difficult.any() for r in dataset.records)  # the fixture marks every 4th object difficult
    assert [_sha(r.image.read_bytes()) for r in dataset.records] == [
        m["image_sha256"] for m in MXNET_READ["mxnet"]
    ]
    with dataset[0].open_image() as image:  # decoded lazily, through image_io
        assert to_rgb(image).size == (INPUTS[0]["width"], INPUTS[0]["height"])


def test_reads_the_record_mxnet_split_into_parts():
    # dmlc-core cut the payload at the three 4-aligned magic words of the crafted JPEG's comment
    parts = MXNET_READ["multipart_parts"]
    assert [flag for flag, _ in parts] == [1, 2, 2, 3] and parts[1][1] == 0
    dataset = read_recordio(FIXTURE / "multipart.rec")
    assert dataset.problems == []
    _assert_matches_inputs(dataset, INPUTS[5:])
    assert _sha(dataset[0].image.read_bytes()) == MXNET_READ["multipart"][0]["image_sha256"]


def test_writer_output_is_byte_identical_to_mxnets(tmp_path):
    for stem, items in (("mxnet", INPUTS[:5]), ("multipart", INPUTS[5:])):
        rec = write_recordio(_inputs(items), tmp_path / stem / "out.rec")
        assert rec.read_bytes() == (FIXTURE / f"{stem}.rec").read_bytes(), stem
        assert rec.with_suffix(".idx").read_text() == (FIXTURE / f"{stem}.idx").read_text(), stem
        assert (rec.parent / "labels.txt").read_text().split() == NAMES


def test_mxnet_reads_what_our_writer_writes(tmp_path):
    rec = write_recordio(_inputs(INPUTS), tmp_path / "ours.rec")
    assert rec.read_bytes() == (FIXTURE / "ours.rec").read_bytes()  # what MXNet was given
    read = json.loads((FIXTURE / "ours_read_by_mxnet.json").read_text())["ours"]
    truth = MXNET_READ["mxnet"] + MXNET_READ["multipart"]  # MXNet's reading of its own packing
    assert [(r["key"], r["id"], r["id2"]) for r in read] == [(i, i, 0) for i in range(6)]
    for found, expected, item in zip(read, truth, INPUTS, strict=True):
        assert found["flag"] == 2 + 6 * len(item["objects"]) == expected["flag"]
        assert found["label"] == expected["label"]
        assert found["image_sha256"] == _sha((FIXTURE / item["file"]).read_bytes())


def test_round_trip_keeps_jpeg_bytes_and_encodes_others(tmp_path, bccd_subset):
    voc = read_voc(bccd_subset, "test")
    png = tmp_path / "png" / "p.png"
    png.parent.mkdir()
    Image.new("RGB", (50, 40), (200, 10, 10)).save(png)
    extra = DetectionRecord("p", png, 50, 40, [[5, 5, 45, 30]], [2], [True])
    generated = load_dataset("shapes:2", class_names=["circle", "square", "triangle"])
    records = voc.records[:3] + [extra] + generated.records
    source = DetectionDataset(records, voc.class_names)
    back = load_dataset(save_dataset(source, tmp_path / "out", "recordio", split="train"))
    assert back.class_names == voc.class_names and back.problems == []
    assert [r.image_id for r in back.records] == [str(i) for i in range(len(records))]
    for a, b in zip(back.records, records, strict=True):
        assert (a.width, a.height) == (b.width, b.height)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        assert a.labels.tolist() == b.labels.tolist() and a.difficult.tolist() == b.difficult.tolist()
    assert back[0].image.read_bytes() == Path(records[0].image).read_bytes()  # JPEG passed through
    for record in back.records[3:]:
        with record.open_image() as image:
            assert image.format == "JPEG"
    # a .rec read back and written again keeps its records' image bytes
    again = read_recordio(write_recordio(back, tmp_path / "again.rec"))
    assert [r.image.read_bytes() for r in again.records] == [r.image.read_bytes() for r in back.records]
    with pytest.raises(ConfigError, match="hold the dataset.s own images"):
        write_recordio(back, tmp_path / "out" / "train.rec")


@pytest.mark.parametrize("to", ["voc", "coco", "yolo"])
def test_converting_a_rec_writes_its_image_bytes_unchanged(tmp_path, to):
    """A .rec's JPEGs land in the new format byte for byte (the writer stored the PNG as a JPEG)."""
    png = tmp_path / "p.png"
    Image.new("RGB", (50, 40), (200, 10, 10)).save(png)
    jpeg = tmp_path / "j.jpg"
    Image.new("RGB", (30, 20), (10, 200, 10)).save(jpeg, quality=80)
    records = [
        DetectionRecord(n, p, w, h, [[2, 2, 12, 12]], [0], [False])
        for n, p, w, h in (("j", jpeg, 30, 20), ("p", png, 50, 40))
    ]
    rec = write_recordio(DetectionDataset(records, ["a"]), tmp_path / "two.rec")
    read = read_recordio(rec, class_names=["a"])
    out = load_dataset(
        save_dataset(read, tmp_path / to, to, split="train"), None if to == "yolo" else "train"
    )
    written = {r.image_id: Path(r.image) for r in out.records}
    assert {i: p.suffix for i, p in written.items()} == {"0": ".jpg", "1": ".jpg"}
    assert written["0"].read_bytes() == jpeg.read_bytes()
    assert written["1"].read_bytes() == read.records[1].image.read_bytes()


def test_a_folder_of_split_files(tmp_path):
    for split in ("train", "val"):
        shutil.copy(FIXTURE / "mxnet.rec", tmp_path / f"{split}.rec")
    shutil.copy(FIXTURE / "labels.txt", tmp_path / "labels.txt")
    assert detect_format(tmp_path) == "recordio"
    assert load_dataset(tmp_path, "val").name == "val" and len(load_dataset(tmp_path, "train")) == 5
    with pytest.raises(ConfigError, match="several .rec files"):
        load_dataset(tmp_path)
    with pytest.raises(
        MissingSplitError,
        match=r"no split .test. in .*: no test.rec \(.rec files there: train.rec, val.rec\)",
    ):
        load_dataset(tmp_path, "test")


def _frame(payload: bytes) -> bytes:
    """One whole (cflag 0) record, framed by hand."""
    return MAGIC + struct.pack("<I", len(payload)) + payload + b"\0" * (-len(payload) % 4)


def _record(label: list[float], image: bytes, identifier: int) -> bytes:
    header = struct.pack("<IfQQ", len(label), 0.0, identifier, 0)
    return _frame(header + np.array(label, "<f4").tobytes() + image)


def _one_line(problem, where: str) -> None:
    assert problem.kind == "bad record" and problem.subject == where and problem.fatal
    assert where in problem.detail and "\n" not in problem.detail


def test_truncated_file(tmp_path):
    offsets = [int(line.split("\t")[1]) for line in (FIXTURE / "mxnet.idx").read_text().splitlines()]
    data = (FIXTURE / "mxnet.rec").read_bytes()[: offsets[2] + 100]
    (tmp_path / "t.rec").write_bytes(data)
    dataset = read_recordio(tmp_path / "t.rec", NAMES)
    assert len(dataset) == 2 and len(dataset.problems) == 1
    _one_line(dataset.problems[0], "t.rec#2")
    assert "the file ends inside the record" in dataset.problems[0].detail
    assert "cannot be found without its .idx" in dataset.problems[0].detail
    shutil.copy(FIXTURE / "mxnet.idx", tmp_path / "t.idx")  # with the index, each lost record is named
    assert [p.subject for p in read_recordio(tmp_path / "t.rec", NAMES).problems] == [
        f"t.rec#{i}" for i in (2, 3, 4)
    ]


def test_wrong_magic(tmp_path):
    data = bytearray((FIXTURE / "mxnet.rec").read_bytes())
    (tmp_path / "junk.rec").write_bytes(b"JUNK" + data[4:])
    with pytest.raises(DataError, match="junk.rec is not an MXNet RecordIO file") as error:
        read_recordio(tmp_path / "junk.rec")
    assert "\n" not in str(error.value)
    offsets = [int(line.split("\t")[1]) for line in (FIXTURE / "mxnet.idx").read_text().splitlines()]
    data[offsets[1] : offsets[1] + 4] = b"JUNK"
    (tmp_path / "m.rec").write_bytes(data)
    shutil.copy(FIXTURE / "mxnet.idx", tmp_path / "m.idx")
    dataset = read_recordio(tmp_path / "m.rec", NAMES)
    assert [r.image_id for r in dataset.records] == ["0", "2", "3", "4"]
    _one_line(dataset.problems[0], "m.rec#1")
    assert "no record magic" in dataset.problems[0].detail


def test_hand_made_labels_bad_and_good(tmp_path):
    jpeg = (FIXTURE / INPUTS[0]["file"]).read_bytes()  # 160x120
    records = [
        _record([2, 4, 1, 0.1, 0.1, 0.5], jpeg, 1),  # object width 4
        _frame(struct.pack("<IfQQ", 0, 3.0, 2, 0) + jpeg),  # a classification record: one label, flag 0
        _record([2, 6, 7, 0.2, 0.2, 0.4, 0.4, 0, 1, 0.1, 0.1, 0.5, 0.5, 0], jpeg, 3),  # class 7 of 3
        _record([2, 6, 1, 0.1, 0.1], jpeg, 4),  # not whole objects
        _record([4, 5, 11, 12, 2, 0.25, 0.5, 0.75, 1.0], jpeg, 5),  # 2 extra header values, no difficult
        _record([3, 7, 99, 0, 0.5, 0.5, 0.625, 0.75, 1, 42], jpeg, 6),  # an extra column after difficult
    ]
    (tmp_path / "b.rec").write_bytes(b"".join(records))
    dataset = read_recordio(tmp_path / "b.rec", NAMES)
    assert [r.image_id for r in dataset.records] == ["3", "5", "6"]
    assert [r.labels.tolist() for r in dataset.records] == [[1], [2], [0]]
    np.testing.assert_allclose(dataset[0].boxes, [[16, 12, 80, 60]], atol=1e-3)
    np.testing.assert_allclose(dataset[1].boxes, [[40, 60, 120, 120]], atol=1e-3)
    np.testing.assert_allclose(dataset[2].boxes, [[80, 60, 100, 90]], atol=1e-3)
    assert [r.difficult.tolist() for r in dataset.records] == [[False], [False], [True]]
    kinds = [(p.kind, p.subject) for p in dataset.problems]
    bad = [("bad record", f"b.rec#{n}") for n in (0, 1, 3)]
    assert kinds == [*bad, ("unknown class", "#7")]
    assert "object width 4 < 5" in dataset.problems[0].detail
    assert "single label value" in dataset.problems[1].detail
    assert "not whole objects of 6" in dataset.problems[2].detail
    for problem in dataset.problems[:3]:
        _one_line(problem, problem.subject)


def test_bad_index_line_and_truncated_image_data(tmp_path):
    rec = _copy(tmp_path, "mxnet")
    rec.with_suffix(".idx").write_text("0\t0\n1\tabc\n")
    with pytest.raises(DataError, match=r"mxnet.idx:2: '1\\tabc' is not 'key<TAB>offset'") as error:
        read_recordio(rec)
    assert "\n" not in str(error.value)
    # a record whose JPEG stops half way: its header reads, decoding it (data check, training) does not
    jpeg = (FIXTURE / INPUTS[0]["file"]).read_bytes()
    (tmp_path / "half.rec").write_bytes(_record([2, 6, 1, 0.1, 0.1, 0.5, 0.5, 0], jpeg[: len(jpeg) // 2], 0))
    dataset = read_recordio(tmp_path / "half.rec", NAMES)
    assert len(dataset) == 1 and dataset.problems == []
    report = check_dataset(dataset)
    assert [(p.kind, p.fatal) for p in report.problems] == [("truncated image", True)]
    assert report.problems[0].detail.startswith("half.rec#0: ")
    assert check_dataset(dataset, decode=False).problems == []


def test_data_check_and_convert_on_the_command_line(tmp_path, capsys):
    rec = _copy(tmp_path / "src", "mxnet")
    assert main(["data", "check", str(rec)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"mxnet: 5 images, {sum(len(i['objects']) for i in INPUTS[:5])} boxes")
    truncated = tmp_path / "cut" / "t.rec"
    truncated.parent.mkdir()
    truncated.write_bytes(rec.read_bytes()[:-50])
    assert main(["data", "check", str(truncated), "--classes", str(rec.parent / "labels.txt")]) == 1
    out = capsys.readouterr().out
    assert "ERROR  bad record: 1" in out and "t.rec#4" in out
    (tmp_path / "junk.rec").write_bytes(b"not a record file")
    assert main(["data", "check", str(tmp_path / "junk.rec")]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("multibox: error: ") and err.count("\n") == 1 and "not an MXNet RecordIO file" in err
    )
    # convert: to VOC and back to a .rec; never over an existing file, nor the source's .idx or labels.txt
    assert main(["data", "convert", str(rec), str(tmp_path / "voc"), "--to", "voc"]) == 0
    assert capsys.readouterr().out.startswith("wrote 5 images")
    back = ["data", "convert", str(tmp_path / "voc"), str(tmp_path / "back" / "back.rec"), "--to", "recordio"]
    assert main(back) == 0
    assert len(load_dataset(tmp_path / "back" / "back.rec")) == 5
    assert main(back) == 2
    assert "--overwrite" in capsys.readouterr().err
    beside = ["data", "convert", str(rec), str(rec.parent / "copy.rec"), "--to", "recordio", "--overwrite"]
    assert main(beside) == 2
    assert "would replace the source" in capsys.readouterr().err


def test_training_reads_a_rec(tmp_path, capsys):
    from multibox.engine.config import TrainConfig
    from multibox.engine.train import train
    from tests.engine.test_train import FAST

    rec = _copy(tmp_path, "mxnet")
    settings = {**FAST, "train_data": str(rec), "val_data": None, "val_split": None, "batch_size": 4}
    result = train(TrainConfig(**settings, epochs=1, max_iterations=2, out_dir=str(tmp_path / "run")))
    assert Path(result.checkpoint).is_file()
    boxes = sum(len(i["objects"]) for i in INPUTS[:5])
    captured = capsys.readouterr()
    assert f"train data mxnet: 5 images, {boxes} boxes; dropped 0 bad boxes" in captured.out + captured.err
