"""Resume: a killed run continues to exactly the weights of an uninterrupted one; bad checkpoints are skipped
by name, other settings refused, stale temporaries removed."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from multibox.checkpoint import read_checkpoint
from multibox.engine.config import TrainConfig
from multibox.engine.train import train
from multibox.errors import ConfigError

RUN = dict(
    train_data="shapes:32",
    val_data="shapes:8",
    network="tiny",
    data_shape=64,
    batch_size=8,
    optimizer="sgd",
    lr=0.01,
    schedule="cosine",
    epochs=3,
    precise_bn_batches=2,
    num_workers=0,
    tensorboard=False,
    device="cpu",
)


def _weights(path) -> dict:
    return read_checkpoint(path)["model"]


def _assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and len(a) > 10
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, different


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final checkpoint of a 3-epoch run that nobody interrupted."""
    out = tmp_path_factory.mktemp("uninterrupted")
    result = train(TrainConfig(**RUN, out_dir=str(out), resume="none"))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    return result.checkpoint


def test_sigkill_mid_epoch_then_resume_gives_the_uninterrupted_weights_bit_for_bit(tmp_path, uninterrupted):
    script = textwrap.dedent(
        f"""
        from multibox.engine.config import TrainConfig
        from multibox.engine.train import train
        train(TrainConfig(**{RUN!r}, out_dir={str(tmp_path)!r}))
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL, env=os.environ.copy())
    first = tmp_path / "checkpoints" / "epoch_0001.pt"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
    assert first.exists(), "the first epoch never finished"
    time.sleep(0.2)  # inside epoch 2 (4 steps), or during its save
    assert child.poll() is None, "the run ended before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = sorted((tmp_path / "checkpoints").glob("epoch_*.pt"))
    assert done and done[-1].name != "epoch_0003.pt"
    result = train(TrainConfig(**RUN, out_dir=str(tmp_path)))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    _assert_same_weights(_weights(result.checkpoint), _weights(uninterrupted))


def test_an_unreadable_newest_checkpoint_is_skipped_by_name(tmp_path, uninterrupted, capsys):
    train(TrainConfig(**{**RUN, "epochs": 3}, out_dir=str(tmp_path), max_iterations=8))  # stops after 2
    newest = tmp_path / "checkpoints" / "epoch_0002.pt"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 3])
    (tmp_path / "checkpoints" / ".epoch_0003.pt.killed.tmp").write_bytes(b"\0" * 4096)
    capsys.readouterr()
    result = train(TrainConfig(**RUN, out_dir=str(tmp_path)))
    err = capsys.readouterr().err
    assert "skipped epoch_0002.pt for resuming: cannot read checkpoint" in err
    assert "resumed from" in err and "epoch_0001.pt (epoch 1," in err
    assert "removed" in err and ".epoch_0003.pt.killed.tmp" in err
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    _assert_same_weights(_weights(result.checkpoint), _weights(uninterrupted))


@pytest.mark.parametrize(
    "change, named",
    [
        ({"data_shape": 96}, "data_shape 64 -> 96"),
        ({"network_options": {"depthwise": True}}, "network_options"),
        ({"class_names": "two"}, "classes"),
    ],
)
def test_resume_into_other_settings_is_refused_in_one_line(tmp_path, change, named):
    train(TrainConfig(**RUN, out_dir=str(tmp_path), max_iterations=1, val_split=None))
    if change.get("class_names") == "two":
        (tmp_path / "two.txt").write_text("circle\nsquare\n")
        change = {**change, "class_names": str(tmp_path / "two.txt")}
    with pytest.raises(ConfigError, match=f"cannot resume from .*epoch_0001.pt.*{named}"):
        train(TrainConfig(**{**RUN, **change}, out_dir=str(tmp_path), val_split=None))


def test_resume_none_starts_afresh_beside_old_checkpoints(tmp_path):
    first = train(TrainConfig(**RUN, out_dir=str(tmp_path), max_iterations=4, val_split=None))
    again = train(TrainConfig(**RUN, out_dir=str(tmp_path), max_iterations=4, val_split=None, resume="none"))
    assert [row["epoch"] for row in again.history] == [1]
    _assert_same_weights(_weights(first.checkpoint), _weights(again.checkpoint))  # same seed, same run
