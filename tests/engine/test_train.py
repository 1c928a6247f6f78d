import pytest
import torch

from multibox.engine.config import TrainConfig
from multibox.engine.train import NonFiniteLossError, train

FAST = dict(
    train_data="shapes:16",
    val_data="shapes:8",
    network="tiny",
    data_shape=64,
    batch_size=8,
    optimizer="adamw",
    lr=1e-3,
    num_workers=0,
    tensorboard=False,
    device="cpu",
)


def test_train_writes_logs_plots_checkpoints_and_resumes(tmp_path):
    config = TrainConfig(**FAST, epochs=2, out_dir=str(tmp_path))
    result = train(config)
    assert [row["epoch"] for row in result.history] == [1, 2]
    assert all(row["mAP_voc07"] is not None for row in result.history)
    for name in ("log.csv", "loss.png", "map.png", "checkpoints/epoch_0001.pt", "checkpoints/best.pt"):
        assert (tmp_path / name).is_file(), name
    assert len((tmp_path / "log.csv").read_text().splitlines()) == 3
    state = torch.load(result.checkpoint, weights_only=False)
    assert state["epoch"] == 2 and state["class_names"] == ["circle", "square", "triangle", "star"]
    # asking for more epochs continues from the newest checkpoint
    resumed = train(config.replace(epochs=3))
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert resumed.history[1] == result.history[1]


def test_non_finite_loss_stops_with_a_clear_message(tmp_path, capsys):
    config = TrainConfig(
        **{**FAST, "optimizer": "sgd", "lr": 1e30},
        epochs=3,
        max_nonfinite=2,
        out_dir=str(tmp_path),
        val_split=None,
    )
    with pytest.raises(NonFiniteLossError, match="non-finite steps in a row .*shapes_0_"):
        train(config)
    assert "skipped the step; images shapes_0_" in capsys.readouterr().err


def test_resuming_with_other_classes_is_a_clear_error(tmp_path):
    train(TrainConfig(**FAST, epochs=1, out_dir=str(tmp_path), val_split=None, max_iterations=1))
    (tmp_path / "classes.txt").write_text("circle\nsquare\n")
    other = TrainConfig(**FAST, epochs=2, out_dir=str(tmp_path), val_split=None)
    with pytest.raises(ValueError, match="cannot resume from .*classes"):
        train(other.replace(val_data=None, class_names=str(tmp_path / "classes.txt")))


def test_mixed_precision_and_channels_last_steps_run(tmp_path):
    config = TrainConfig(**FAST, epochs=1, max_iterations=2, amp=True, channels_last=True, val_split=None)
    result = train(config.replace(out_dir=str(tmp_path), val_data=None))
    assert result.history[0]["step"] == 2
    assert all(torch.isfinite(p).all() for p in result.model.parameters())


def _voc_folder(root, xml_texts: dict[str, str]):
    from PIL import Image

    (root / "Annotations").mkdir(parents=True)
    (root / "JPEGImages").mkdir()
    for stem, text in xml_texts.items():
        (root / "Annotations" / f"{stem}.xml").write_text(text)
        Image.new("RGB", (32, 32), (90, 120, 30)).save(root / "JPEGImages" / f"{stem}.jpg")
    return root


@pytest.mark.parametrize("xml", [None, "<annotation><object>", "not xml at all"])
def test_training_without_a_usable_image_is_an_error_not_a_checkpoint(tmp_path, xml):
    from multibox.errors import DataError

    data = _voc_folder(tmp_path / "voc", {} if xml is None else {"a": xml, "b": xml})
    config = TrainConfig(**{**FAST, "train_data": str(data)}, train_split=None, val_split=None, epochs=1)
    with pytest.raises(DataError, match="no usable images in train_data"):
        train(config.replace(out_dir=str(tmp_path / "run")))
    assert not (tmp_path / "run" / "checkpoints").exists()


def _voc_xml(stem: str) -> str:
    return (
        f"<annotation><filename>{stem}.jpg</filename><size><width>64</width><height>64</height><depth>3</depth>"
        "</size><object><name>blob</name><difficult>0</difficult><bndbox><xmin>8</xmin><ymin>8</ymin>"
        "<xmax>40</xmax><ymax>40</ymax></bndbox></object></annotation>"
    )


def test_an_undecodable_image_is_skipped_and_named_never_replaced(tmp_path, capsys):
    from tests.image_helpers import noise, write_truncated_jpeg

    stems = [f"img{i}" for i in range(9)]
    data = _voc_folder(tmp_path / "voc", {stem: _voc_xml(stem) for stem in stems})
    for stem in stems:  # 64x64 images as the annotations say
        from PIL import Image

        Image.fromarray(noise(64, 64, seed=int(stem[3:]))).save(data / "JPEGImages" / f"{stem}.jpg")
    write_truncated_jpeg(data / "JPEGImages" / "img4.jpg", noise(64, 64, seed=99))  # header fine, data cut
    config = TrainConfig(
        **{**FAST, "train_data": str(data), "val_data": None, "batch_size": 3},
        train_split=None,
        val_split=None,
        epochs=1,
    )
    result = train(config.replace(out_dir=str(tmp_path / "run")))
    err = capsys.readouterr().err
    assert "skipped unreadable image img4" in err
    assert "skipped 1 undecodable images (img4)" in err
    row = result.history[0]
    assert row["skipped_images"] == 1
    assert row["step"] == 3  # 3 batches of 3: the one with img4 trains on 2 images, nothing stands in


def test_tensorboard_logs_are_written_as_promised(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = TrainConfig(**{**FAST, "tensorboard": True}, epochs=1, max_iterations=2, val_split=None)
    train(config.replace(out_dir=str(tmp_path), val_data=None))
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert {"CrossEntropy", "SmoothL1", "lr"} <= set(events.Tags()["scalars"])
    assert [e.step for e in events.Scalars("lr")] == [1]
