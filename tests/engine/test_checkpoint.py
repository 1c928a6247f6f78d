import os
import signal
import subprocess
import sys
import textwrap

import torch

from multibox.engine.checkpoint import Checkpointer, atomic_save, rng_state, set_rng_state


def test_keeps_last_k_and_best(tmp_path):
    ckpt = Checkpointer(tmp_path, keep_last=2)
    for epoch, metric in enumerate([0.1, 0.5, 0.3, 0.4], start=1):
        ckpt.save({"epoch": epoch}, epoch, metric=metric)
    assert [p.name for p in ckpt.epoch_files()] == ["epoch_0003.pt", "epoch_0004.pt"]
    assert ckpt.load()["epoch"] == 4
    assert ckpt.load(tmp_path / "best.pt")["epoch"] == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_latest_is_none_in_an_empty_folder(tmp_path):
    assert Checkpointer(tmp_path / "nothing").latest() is None
    assert Checkpointer(tmp_path / "nothing").load() is None


def test_rng_state_round_trip():
    state = rng_state()
    expected = torch.rand(3)
    torch.rand(5)
    set_rng_state(state)
    assert torch.equal(torch.rand(3), expected)


def test_sigkill_during_save_leaves_the_previous_checkpoint_loadable(tmp_path):
    target = tmp_path / "epoch_0001.pt"
    atomic_save({"weights": torch.ones(3)}, target)
    # A child process keeps rewriting a large checkpoint; we kill it mid-write, repeatedly.
    script = textwrap.dedent(
        f"""
        import torch
        from multibox.engine.checkpoint import atomic_save
        big = {{"weights": torch.randn(4_000_000)}}
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
        loaded = torch.load(target, weights_only=False)
        assert loaded["weights"].numel() in (3, 4_000_000)
