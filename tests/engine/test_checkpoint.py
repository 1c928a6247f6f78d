import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from multibox.checkpoint import (
    atomic_save,
    check_resumable,
    make_checkpoint,
    read_checkpoint,
    remove_stale_temporaries,
)
from multibox.engine.checkpointer import Checkpointer, rng_state, set_rng_state
from multibox.errors import ConfigError, DataError

NETWORK = {"name": "tiny", "num_classes": 2, "data_shape": 64, "options": {}}


def _state(epoch: int, **extra) -> dict:
    return make_checkpoint(
        {"w": torch.full((2,), float(epoch))}, ["a", "b"], NETWORK, {}, epoch=epoch, **extra
    )


class RunsACommand:
    """Pickles as a call of os.system: what a crafted checkpoint would do when unpickled unsafely."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_keeps_last_k_and_best(tmp_path):
    ckpt = Checkpointer(tmp_path, keep_last=2)
    for epoch, metric in enumerate([0.1, 0.5, 0.3, 0.4], start=1):
        ckpt.save(_state(epoch), epoch, metric=metric)
    assert [p.name for p in ckpt.epoch_files()] == ["epoch_0003.pt", "epoch_0004.pt"]
    assert read_checkpoint(ckpt.latest())["epoch"] == 4
    assert read_checkpoint(tmp_path / "best.pt")["epoch"] == 2
    assert read_checkpoint(tmp_path / "best.pt")["schema"] == 1
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*"))


def test_latest_is_none_in_an_empty_folder(tmp_path):
    assert Checkpointer(tmp_path / "nothing").latest() is None
    assert Checkpointer(tmp_path / "nothing").newest_readable() == (None, None, [])


def test_a_pickle_that_runs_code_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "it_ran"
    evil = tmp_path / "evil.pt"
    torch.save({**_state(1), "payload": RunsACommand(marker)}, evil)
    # the file really is dangerous: unpickled the unsafe way it runs the command
    torch.load(evil, weights_only=False)
    assert marker.exists()
    marker.unlink()
    with pytest.raises(DataError, match="refused to load .*evil.pt: it holds Python objects"):
        read_checkpoint(evil)
    assert not marker.exists()


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is not a file torch.save wrote"),
        (b"this is a text file\n", "is not a file torch.save wrote"),
    ],
)
def test_files_that_are_not_checkpoints_are_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_checkpoint(path)


def test_a_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "epoch_0001.pt"
    atomic_save(_state(1, big=torch.randn(100_000)), path)
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 100, 64):
        path.write_bytes(data[:cut])
        with pytest.raises(
            DataError, match="cannot read checkpoint .*epoch_0001.pt: the file is truncated or damaged"
        ):
            read_checkpoint(path)


def test_a_foreign_state_dict_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save({"conv.weight": torch.zeros(3)}, path)
    with pytest.raises(DataError, match="not a multibox training checkpoint"):
        read_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_checkpoint(tmp_path / "missing.pt")


def test_newest_readable_falls_back_past_broken_files(tmp_path):
    ckpt = Checkpointer(tmp_path, keep_last=5)
    for epoch in (1, 2, 3):
        ckpt.save(_state(epoch), epoch)
    (tmp_path / "epoch_0003.pt").write_bytes(b"garbage")
    data = (tmp_path / "epoch_0002.pt").read_bytes()
    (tmp_path / "epoch_0002.pt").write_bytes(data[: len(data) // 2])
    path, state, skipped = ckpt.newest_readable()
    assert path.name == "epoch_0001.pt" and state["epoch"] == 1
    assert [p.name for p, _ in skipped] == ["epoch_0003.pt", "epoch_0002.pt"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    Checkpointer(tmp_path).save(_state(1), 1)
    stale = [tmp_path / ".epoch_0002.pt.abc123.tmp", tmp_path / ".best.pt.x.tmp"]
    for path in stale:
        path.write_bytes(b"\0" * 1000)
    removed = remove_stale_temporaries(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["epoch_0001.pt"]


@pytest.mark.parametrize(
    "change, named",
    [
        ({"name": "vgg16_reduced"}, "network tiny -> vgg16_reduced"),
        ({"data_shape": 96}, "data_shape 64 -> 96"),
        ({"options": {"depthwise": True}}, "network_options {} -> {'depthwise': True}"),
    ],
)
def test_resuming_into_another_network_is_refused(change, named):
    with pytest.raises(ConfigError, match=named.replace("{", r"\{").replace("}", r"\}")):
        check_resumable(_state(1), "run.pt", ["a", "b"], {**NETWORK, **change})
    with pytest.raises(ConfigError, match=r"classes \['a', 'b'\] -> \['a', 'c'\]"):
        check_resumable(_state(1), "run.pt", ["a", "c"], NETWORK)
    check_resumable(_state(1), "run.pt", ["a", "b"], dict(NETWORK))  # the same settings resume


def test_rng_state_round_trip():
    state = rng_state()
    expected = torch.rand(3)
    torch.rand(5)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected)


def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "epoch_0001.pt"
    atomic_save(_state(1), target)
    # A child process keeps rewriting a large checkpoint; we kill it mid-write, repeatedly.
    script = textwrap.dedent(
        f"""
        import torch
        from multibox.checkpoint import atomic_save
        big = {{"model": {{"w": torch.randn(4_000_000)}}, "network": {NETWORK!r}, "class_names": ["a", "b"]}}
        print("ready", flush=True)
        while True:
            atomic_save(big, {str(target)!r})
        """
    )
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, "-c", script], stdout=subprocess.PIPE, env=os.environ.copy()
        )
        assert child.stdout.readline().strip() == b"ready"
        child.send_signal(signal.SIGKILL)
        child.wait()
        assert read_checkpoint(target)["model"]["w"].numel() in (2, 4_000_000)
