"""The training loop: a short loop over epochs and steps, and hooks that do everything else.

``Trainer.train()`` calls, on every registered hook in order, ``before_train``, then per epoch
``before_epoch``, per batch ``before_step`` / :meth:`Trainer.run_step` / ``after_step``, then ``after_epoch``, and
finally ``after_train`` (also when training fails). The hooks in :mod:`multibox.engine.hooks` give the learning
rate schedule, the non-finite guard, epoch metrics, the progress bar, precise BN, evaluation, checkpoints and
resume, CSV and plots, TensorBoard and the stop conditions; :func:`multibox.engine.train.train` registers them.
Every rank runs every hook, so collectives inside hooks (agreements, broadcasts) line up.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

from multibox.engine.distributed import DistributedContext


class HookBase:
    """Something the loop calls at fixed points; ``self.trainer`` is set when the hook is registered.

    A hook with training state to keep across a resume sets ``state_key`` and implements ``state_dict`` /
    ``load_state_dict``; :meth:`Trainer.state_dict` stores it under that key.
    """

    trainer: Trainer
    state_key: str | None = None

    def before_train(self) -> None: ...

    def before_epoch(self) -> None: ...

    def before_step(self) -> None: ...

    def after_step(self) -> None: ...

    def after_epoch(self) -> None: ...

    def after_train(self) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None: ...


@dataclass
class Batch:
    """One training batch on the device: images ``(B, 3, H, W)`` uint8, labels ``(B, M, 6)`` padded with -1,
    and the dataset indices of its images."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: list[int]


class Trainer:
    """Runs ``train_model`` (a module whose forward gives ``SSD.loss``'s dict) over ``loader`` for
    ``max_epochs`` epochs (None: until a hook stops it), stepping ``optimizer``; everything else is a hook.
    ``loader`` gives ``(images, labels, indices)`` batches and has a sampler with ``set_epoch``; ``image_ids``
    names its images.

    State the hooks read and write: ``epoch`` (0-based, the current one), ``step`` (optimiser steps done),
    ``batch``, ``outputs`` (the last step's loss dict), ``step_finite`` (whether the last step was taken),
    ``row`` (the current epoch's history row), ``history``, ``skipped_images`` (ids of this epoch's images that
    could not be decoded), ``end_epoch`` (leave the epoch after this step) and ``stop_training``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        train_model: torch.nn.Module,
        optimizer: torch.optim.Optimizer,
        loader: torch.utils.data.DataLoader,
        dist: DistributedContext,
        max_epochs: int | None,
        *,
        image_ids: Sequence[str] = (),
        autocast: AbstractContextManager | None = None,
        scaler: torch.amp.GradScaler | None = None,
        channels_last: bool = False,
        hooks: Sequence[HookBase] = (),
    ) -> None:
        self.model, self.train_model, self.optimizer, self.loader = model, train_model, optimizer, loader
        self.dist, self.max_epochs, self.image_ids = dist, max_epochs, image_ids
        self.autocast = autocast if autocast is not None else nullcontext()
        self.scaler, self.channels_last = scaler, channels_last
        self.hooks: list[HookBase] = []
        self.epoch = self.step = 0
        self.history: list[dict] = []
        self.row: dict = {}
        self.batch: Batch | None = None
        self.outputs: dict[str, torch.Tensor] = {}
        self.step_finite = True
        self.skipped_images: list[str] = []
        self.end_epoch = self.stop_training = False
        self.register(*hooks)

    def register(self, *hooks: HookBase) -> None:
        """Add hooks; each one's methods run after those of the hooks registered before it."""
        for hook in hooks:
            hook.trainer = self
            self.hooks.append(hook)

    @property
    def last_epoch(self) -> bool:
        """Whether the current epoch is the run's last (its final one, or a stop condition was met)."""
        return self.stop_training or (self.max_epochs is not None and self.epoch + 1 >= self.max_epochs)

    def epoch_text(self) -> str:
        """The current epoch for people: ``3/20``, or ``3`` without an epoch limit."""
        return f"{self.epoch + 1}" + (f"/{self.max_epochs}" if self.max_epochs is not None else "")

    def train(self) -> None:
        """Epochs from ``self.epoch`` (a resume hook may move it) to ``max_epochs`` (None: no limit) or until a
        hook stops."""
        self._call("before_train")
        try:
            while (self.max_epochs is None or self.epoch < self.max_epochs) and not self.stop_training:
                self._run_epoch()
                self.epoch += 1
        finally:
            self._call("after_train")

    def _run_epoch(self) -> None:
        self.row, self.skipped_images, self.end_epoch = {"epoch": self.epoch + 1}, [], False
        self.model.train()
        self._call("before_epoch")
        for batch in self._batches():
            self.batch = batch
            self._call("before_step")
            self.run_step()
            self._call("after_step")
            if self.end_epoch:
                break
        self._call("after_epoch")

    def run_step(self) -> None:
        """Data -> loss dict -> backward -> optimiser step. A non-finite loss or gradient on any rank leaves
        the weights alone on every rank (``step_finite`` False); the non-finite guard hook decides what next."""
        with self.autocast:
            self.outputs = self.train_model(self.batch.images, self.batch.labels)
        self.optimizer.zero_grad(set_to_none=True)
        self.step_finite = self._backward(self.outputs["loss"])
        if not self.step_finite:
            self.optimizer.zero_grad(set_to_none=True)
            return
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.step += 1

    def _backward(self, loss: torch.Tensor) -> bool:
        """Backward when the loss is finite on every rank; returns whether loss and gradients are finite."""
        if not self.dist.all_ranks(bool(torch.isfinite(loss))):
            return False
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()
        if self.scaler is not None:
            self.scaler.unscale_(self.optimizer)
        grads = [p for p in self.model.parameters() if p.grad is not None]
        if bool(torch.isfinite(torch.nn.utils.clip_grad_norm_(grads, max_norm=math.inf))):
            return True
        if self.scaler is not None:
            self.scaler.update()  # lowers the scale, as a skipped fp16 step should
        return False

    def _batches(self) -> Iterator[Batch]:
        """The epoch's batches on the device, noting the images that could not be decoded (the loader leaves
        them out); a batch left empty on any rank is skipped on every rank."""
        self.loader.sampler.set_epoch(self.epoch)
        order = [index for index, _ in self.loader.sampler]
        size = self.loader.batch_size
        for batch_index, (images, labels, indices) in enumerate(self.loader):
            indices = indices.tolist()
            expected = order[batch_index * size :][:size]
            self.skipped_images += [self.image_name(i) for i in sorted(set(expected) - set(indices))]
            if self.dist.all_ranks(images.shape[0] > 0):
                yield Batch(
                    self.prepare_images(images), labels.to(self.dist.device, non_blocking=True), indices
                )

    def image_name(self, index: int) -> str:
        """The id of the training set's image ``index`` (the index itself when no ids were given)."""
        return str(self.image_ids[index]) if index < len(self.image_ids) else f"#{index}"

    def prepare_images(self, images: torch.Tensor) -> torch.Tensor:
        """Images to the device (and channels-last memory when asked)."""
        images = images.to(self.dist.device, non_blocking=True)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def state_dict(self) -> dict:
        """What resuming needs: weights, optimiser, scaler, progress, history, and the stateful hooks' state."""
        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict() if self.scaler is not None else None,
            "epoch": self.epoch + 1,  # epochs completed when saved at the end of this one
            "step": self.step,
            "history": list(self.history),
        }
        state.update({hook.state_key: hook.state_dict() for hook in self.hooks if hook.state_key})
        return state

    def load_state_dict(self, state: dict) -> None:
        """The inverse of :meth:`state_dict`: training continues at epoch ``state["epoch"]``."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler is not None and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.step, self.history = state["epoch"], state["step"], list(state.get("history", []))
        for hook in self.hooks:
            if hook.state_key and hook.state_key in state:
                hook.load_state_dict(state[hook.state_key])

    def _call(self, stage: str) -> None:
        for hook in self.hooks:
            getattr(hook, stage)()
