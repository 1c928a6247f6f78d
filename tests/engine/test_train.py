import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
import torch.multiprocessing as mp

from multibox.engine.config import TrainConfig, load_config
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


def test_sigkill_mid_epoch_then_resume(tmp_path):
    script = textwrap.dedent(
        f"""
        from multibox.engine.config import TrainConfig
        from multibox.engine.train import train
        train(TrainConfig(**{FAST!r}, epochs=50, out_dir={str(tmp_path)!r}, val_split=None))
        """
    )
    child = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.DEVNULL, env=os.environ.copy())
    first = tmp_path / "checkpoints" / "epoch_0001.pt"
    deadline = time.time() + 240
    while not first.exists() and time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
    assert first.exists(), "the first epoch never finished"
    time.sleep(0.7)  # somewhere inside a later epoch (or mid-save)
    child.send_signal(signal.SIGKILL)
    child.wait()
    killed_at = torch.load(sorted((tmp_path / "checkpoints").glob("epoch_*.pt"))[-1], weights_only=False)[
        "epoch"
    ]
    result = train(TrainConfig(**FAST, epochs=killed_at + 1, out_dir=str(tmp_path), val_split=None))
    assert [row["epoch"] for row in result.history] == list(range(1, killed_at + 2))


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


def _ddp_worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    config = TrainConfig(**FAST, epochs=1, max_iterations=3, out_dir=out, val_split=None, resume="none")
    result = train(config)
    torch.save(dict(result.model.named_parameters()), os.path.join(out, f"rank{rank}.pt"))


def test_two_process_gloo_training_ends_with_identical_weights(tmp_path):
    port = 29500 + os.getpid() % 1000
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    # each rank seeds its own (different) initialisation; DDP starts them from rank 0's and keeps them equal
    a = torch.load(tmp_path / "rank0.pt")
    b = torch.load(tmp_path / "rank1.pt")
    assert a.keys() == b.keys() and len(a) > 10
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_config_from_yaml_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("network: tiny\nlr: 0.01\nlr_steps: [3, 6]\n")
    config = load_config(path, ["batch_size=4", "amp=true", "network_options={depthwise: true}"])
    assert (config.network, config.lr, config.lr_steps, config.batch_size) == ("tiny", 0.01, [3, 6], 4)
    assert config.amp is True and config.network_options == {"depthwise": True}
    with pytest.raises(ValueError, match="unknown setting 'lr_step'"):
        load_config(None, ["lr_step=3"])
    with pytest.raises(ValueError, match="batch_size expects an integer"):
        load_config(None, ["batch_size=big"])
    with pytest.raises(ValueError, match="unknown settings"):
        (tmp_path / "bad.yaml").write_text("typo: 1\n")
        load_config(tmp_path / "bad.yaml")


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
