"""The training loop and its hooks on a toy problem (a linear model whose 'loss dict' is its squared error), and a
user hook added to a real ``train(config, hooks=...)`` run."""

from __future__ import annotations

import pytest
import torch

from multibox.engine.config import TrainConfig
from multibox.engine.distributed import DistributedContext
from multibox.engine.hooks import LRSchedule, NonFiniteGuard, NonFiniteLossError, StopConditions
from multibox.engine.train import train
from multibox.engine.trainer import HookBase, Trainer

IMAGES = 6  # the toy set: image i is a (1, 3, 1, 1) tensor of value i


class ToySampler:
    """The loader's sampler contract: ``(index, seed)`` pairs in order, ``set_epoch``."""

    def __init__(self, size: int) -> None:
        self.size, self.epochs = size, []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)

    def __iter__(self):
        return iter([(i, 0) for i in range(self.size)])


class ToyLoader:
    """Batches of 2 as ``(images (2, 3, 1, 1), labels (2, 1, 6), indices (2,))``; ``poison`` makes one image NaN,
    ``lost`` leaves images out as an undecodable image would be."""

    batch_size = 2

    def __init__(self, poison: set[int] = frozenset(), lost: set[int] = frozenset()) -> None:
        self.sampler, self.poison, self.lost = ToySampler(IMAGES), poison, lost

    def __len__(self) -> int:
        return IMAGES // self.batch_size

    def __iter__(self):
        for start in range(0, IMAGES, self.batch_size):
            kept = [i for i in range(start, start + self.batch_size) if i not in self.lost]
            values = [float("nan") if i in self.poison else float(i) for i in kept]
            images = torch.tensor(values).view(-1, 1, 1, 1).expand(-1, 3, 1, 1)
            yield images, torch.zeros(len(kept), 1, 6), torch.tensor(kept)


class SquaredError(torch.nn.Module):
    """``{"loss": mean((w * x - 1)^2)}`` for images x: a loss dict like SSD.loss's."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": ((self.model(images.float().mean((1, 2, 3))[:, None]) - 1) ** 2).mean()}


class Recorder(HookBase):
    def __init__(self, calls: list) -> None:
        self.calls = calls

    def before_train(self) -> None:
        self.calls.append("before_train")

    def before_epoch(self) -> None:
        self.calls.append(f"before_epoch {self.trainer.epoch}")

    def before_step(self) -> None:
        self.calls.append(f"before_step {self.trainer.batch.indices}")

    def after_step(self) -> None:
        self.calls.append(f"after_step {self.trainer.step}")

    def after_epoch(self) -> None:
        self.calls.append(f"after_epoch {self.trainer.epoch}")

    def after_train(self) -> None:
        self.calls.append("after_train")


def _trainer(loader=None, epochs: int = 2, lr: float = 0.01, hooks=()) -> Trainer:
    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    ids = [f"img{i}" for i in range(IMAGES)]
    return Trainer(
        model,
        SquaredError(model),
        optimizer,
        loader or ToyLoader(),
        DistributedContext(),
        epochs,
        image_ids=ids,
        hooks=hooks,
    )


def test_hooks_run_in_order_around_every_step_and_epoch():
    calls = []
    trainer = _trainer(hooks=[Recorder(calls)])
    trainer.train()
    assert calls == [
        "before_train",
        *["before_epoch 0", "before_step [0, 1]", "after_step 1", "before_step [2, 3]", "after_step 2"],
        *["before_step [4, 5]", "after_step 3", "after_epoch 0"],
        *["before_epoch 1", "before_step [0, 1]", "after_step 4", "before_step [2, 3]", "after_step 5"],
        *["before_step [4, 5]", "after_step 6", "after_epoch 1"],
        "after_train",
    ]
    assert trainer.step == 6 and trainer.epoch == 2 and trainer.loader.sampler.epochs == [0, 1]


def test_a_step_is_plain_sgd_on_the_loss():
    trainer = _trainer(epochs=1, lr=0.1, hooks=[StopConditions(max_iterations=1)])
    w = trainer.model.weight.item()
    trainer.train()
    # the first batch holds images 0 and 1: loss = ((w*0 - 1)^2 + (w*1 - 1)^2) / 2, so d loss / dw = w - 1
    assert trainer.model.weight.item() == pytest.approx(w - 0.1 * (w - 1), rel=1e-6)


class Watch(HookBase):
    """Keeps ``read(trainer)`` after every step or epoch."""

    def __init__(self, read, at: str = "after_step") -> None:
        self.read, self.seen = read, []
        setattr(self, at, lambda: self.seen.append(self.read(self.trainer)))


def test_a_non_finite_step_leaves_the_weights_and_the_guard_names_the_images(capsys):
    weights = Watch(lambda trainer: trainer.model.weight.item())
    trainer = _trainer(ToyLoader(poison={3}), epochs=1, hooks=[NonFiniteGuard(max_in_a_row=2), weights])
    trainer.train()
    assert trainer.step == 2  # batches 0 and 2 stepped; batch 1 (image 3 is NaN) did not
    assert weights.seen[1] == weights.seen[0] != weights.seen[2]
    err = capsys.readouterr().err
    assert "non-finite loss or gradient at epoch 1 step 1: skipped the step; images img2, img3" in err


def test_the_guard_stops_after_max_in_a_row_and_after_train_still_runs():
    calls = []
    trainer = _trainer(ToyLoader(poison={1, 3}), hooks=[NonFiniteGuard(max_in_a_row=2), Recorder(calls)])
    with pytest.raises(NonFiniteLossError, match=r"2 non-finite steps in a row \(last images: img2, img3\)"):
        trainer.train()
    assert calls[-1] == "after_train" and trainer.step == 0


def test_max_iterations_ends_the_epoch_midway_and_the_run():
    calls = []
    trainer = _trainer(epochs=3, hooks=[StopConditions(max_iterations=2), Recorder(calls)])
    trainer.train()
    assert trainer.step == 2 and trainer.epoch == 1
    assert calls[-3:] == ["after_step 2", "after_epoch 0", "after_train"]


def test_undecodable_images_are_named_per_epoch():
    skipped = Watch(lambda trainer: list(trainer.skipped_images), at="after_epoch")
    trainer = _trainer(ToyLoader(lost={4}), epochs=1, hooks=[skipped])
    trainer.train()
    assert skipped.seen == [["img4"]] and trainer.step == 3


def test_state_dict_resumes_weights_progress_and_stateful_hooks():
    def with_schedule(epochs):
        trainer = _trainer(epochs=epochs)
        schedule = torch.optim.lr_scheduler.StepLR(trainer.optimizer, step_size=2, gamma=0.5)
        trainer.register(LRSchedule(schedule))
        return trainer

    straight = with_schedule(2)
    straight.train()
    first = with_schedule(1)
    first.train()
    first.epoch -= 1  # state_dict is taken at the end of an epoch, as the checkpoint hook does
    state = first.state_dict()
    assert state["epoch"] == 1 and state["step"] == 3 and "scheduler" in state
    resumed = with_schedule(2)
    resumed.load_state_dict(state)
    resumed.train()
    assert resumed.model.weight.item() == straight.model.weight.item()
    assert (
        resumed.optimizer.param_groups[0]["lr"] == straight.optimizer.param_groups[0]["lr"] == 0.01 * 0.5**3
    )


def test_train_runs_a_user_hook_after_the_standard_ones(tmp_path):
    rows = []

    class KeepRows(HookBase):
        def after_epoch(self) -> None:
            rows.append(dict(self.trainer.row))

    config = TrainConfig(
        train_data="shapes:16",
        val_data="shapes:8",
        network="tiny",
        data_shape=64,
        batch_size=8,
        epochs=2,
        num_workers=0,
        tensorboard=False,
        device="cpu",
        out_dir=str(tmp_path),
    )
    result = train(config, hooks=[KeepRows()])
    assert rows == result.history  # it saw each finished row: losses, lr, speed and the evaluation
    assert {"CrossEntropy", "SmoothL1", "lr", "mAP_voc07"} <= set(rows[-1])
