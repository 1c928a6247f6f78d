"""Two gloo processes: a BatchNorm network validated every epoch, and a resume, end with identical weights."""

import os

import torch
import torch.multiprocessing as mp

from multibox.engine.config import TrainConfig

RUN = dict(
    train_data="shapes:32",
    val_data="shapes:8",
    network="tiny",  # BatchNorm in every block: precise BN all-reduces its statistics
    data_shape=64,
    batch_size=8,
    optimizer="adamw",
    lr=1e-3,
    val_interval=1,
    precise_bn_batches=2,
    num_workers=0,
    tensorboard=False,
    device="cpu",
)


def _worker(rank: int, world_size: int, port: int, root: str, epochs: int, tag: str) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world_size)
    )
    os.environ["LOCAL_RANK"] = str(rank)
    torch.set_num_threads(1)
    from multibox.engine.train import train

    # each rank has its own folder, as nodes without a shared filesystem: only rank 0's holds checkpoints
    out = os.path.join(root, f"rank{rank}")
    result = train(TrainConfig(**RUN, epochs=epochs, out_dir=out))
    state = {k: v.detach().clone() for k, v in result.model.state_dict().items()}
    torch.save({"state": state, "history": result.history}, os.path.join(root, f"{tag}{rank}.pt"))


def _spawn(root, epochs: int, tag: str) -> tuple[dict, dict]:
    port = 29500 + (os.getpid() + epochs) % 1000
    mp.spawn(_worker, args=(2, port, str(root), epochs, tag), nprocs=2, join=True)
    return (torch.load(root / f"{tag}0.pt"), torch.load(root / f"{tag}1.pt"))


def _assert_identical(a: dict, b: dict) -> None:
    assert a.keys() == b.keys() and any("running_mean" in k for k in a)
    different = [key for key in a if not torch.equal(a[key], b[key])]
    assert not different, different


def test_two_ranks_validating_every_epoch_then_resuming_stay_identical(tmp_path):
    first0, first1 = _spawn(tmp_path, epochs=2, tag="first")
    _assert_identical(first0["state"], first1["state"])
    assert [row["epoch"] for row in first0["history"]] == [1, 2]
    assert first0["history"] == first1["history"]  # every rank knows the validation results
    assert all(row["mAP_voc07"] is not None for row in first1["history"])
    assert not (tmp_path / "rank1" / "checkpoints").exists()

    again0, again1 = _spawn(tmp_path, epochs=3, tag="again")  # rank 1 resumes from rank 0's file
    assert [row["epoch"] for row in again1["history"]] == [1, 2, 3]
    assert again1["history"][:2] == first0["history"]
    _assert_identical(again0["state"], again1["state"])
    assert any(not torch.equal(first0["state"][k], again0["state"][k]) for k in first0["state"])
