"""The hooks of an epoch's end: precise BN, evaluation, the epoch line and history, checkpoints (and resume),
log.csv with the plots, and TensorBoard. Registered in this order, after those of :mod:`multibox.engine.hooks`.
"""

from __future__ import annotations

from pathlib import Path

from multibox.checkpoint import make_checkpoint
from multibox.engine.checkpointer import Checkpointer, rng_state, set_rng_state
from multibox.engine.diagnostics import overall_threshold, write_diagnostics
from multibox.engine.evaluate import evaluate
from multibox.engine.precise_bn import recompute_batchnorm_statistics
from multibox.engine.resume import find_resume_state
from multibox.engine.train_logs import TensorBoardLog, log, plot_history, write_csv
from multibox.engine.trainer import HookBase


def _due(trainer, period) -> bool:
    """Whether an every-``period``-epochs task runs at the end of this epoch (always at the last one);
    ``period`` is a number of epochs or a function giving it (a time-budgeted run measures it as it goes)."""
    every = period() if callable(period) else period
    return (trainer.epoch + 1) % every == 0 or trainer.last_epoch


def _models(trainer, ema) -> list:
    return [trainer.model] + ([ema.model] if ema is not None else [])


class PreciseBN(HookBase):
    """Recomputes BatchNorm running statistics over ``batches`` training batches before each evaluation and at
    the end (running averages lag behind fast-moving weights; see precise_bn.py), for the weights and, with an
    ``ema`` hook, for their average."""

    def __init__(self, batches: int, period, has_validation: bool, ema=None) -> None:
        self.batches, self.period, self.has_validation, self.ema = batches, period, has_validation, ema

    def after_epoch(self) -> None:
        trainer = self.trainer
        if self.batches > 0 and ((self.has_validation and _due(trainer, self.period)) or trainer.last_epoch):
            recompute_batchnorm_statistics(
                _models(trainer, self.ema), trainer.loader, self.batches, trainer.prepare_images
            )


class Evaluation(HookBase):
    """VOC07 and area mAP on ``val_loader`` every ``period`` epochs and at the end, on rank 0 (the other ranks
    wait for the row's broadcast), into the epoch's history row.

    With an ``ema`` hook both the weights and their average are scored (``mAP_voc07_raw``, ``mAP_voc07_ema``);
    ``mAP_voc07`` / ``mAP_area`` are then those of the better by VOC07, which the row names in
    ``inference_weights`` (``"model"`` or ``"ema"``) and the checkpoint detects with."""

    def __init__(
        self, val_loader, class_names: list[str], period, ema=None, out_dir: Path | None = None
    ) -> None:
        self.val_loader, self.class_names, self.period, self.ema = val_loader, class_names, period, ema
        self.out_dir = out_dir

    def after_epoch(self) -> None:
        trainer = self.trainer
        if trainer.dist.rank != 0 or not _due(trainer, self.period):
            return
        results = {}
        for key, model in zip(("model", "ema"), _models(trainer, self.ema), strict=False):
            results[key] = evaluate(
                model, self.val_loader, self.class_names, trainer.dist.device, diagnostics=trainer.last_epoch
            )
        excluded = results["model"].get("excluded")
        if excluded:
            log(f"excluded {len(excluded)} undecodable images from the score: {', '.join(excluded)}")
        best = max(results, key=lambda key: results[key]["mAP_voc07"])
        trainer.row.update(
            mAP_voc07=float(results[best]["mAP_voc07"]), mAP_area=float(results[best]["mAP_area"])
        )
        if trainer.last_epoch:
            self._tune_threshold(results[best]["diagnostics"])
        if self.ema is not None:
            trainer.row.update(
                mAP_voc07_raw=float(results["model"]["mAP_voc07"]),
                mAP_voc07_ema=float(results["ema"]["mAP_voc07"]),
                inference_weights=best,
            )

    def _tune_threshold(self, diagnostics: dict) -> None:
        """The F1-best score as the detector's display threshold, and the diagnostics into
        ``out_dir/evaluation`` (PR curves, confusion matrix, per-class CSV)."""
        threshold = overall_threshold(diagnostics)
        for model in _models(self.trainer, self.ema):
            model.detection = model.detection.replace(display_threshold=threshold)
        self.trainer.row["display_threshold"] = threshold
        if self.out_dir is not None:
            write_diagnostics(diagnostics, self.class_names, self.out_dir / "evaluation")
            log(
                f"evaluation pictures and tables in {self.out_dir / 'evaluation'}; display threshold {threshold:.2f}"
            )


class EpochReport(HookBase):
    """Makes the epoch's row the same on every rank, prints it in one line (rank 0) and adds it to the history."""

    def after_epoch(self) -> None:
        trainer = self.trainer
        row = trainer.row = trainer.dist.broadcast_object(trainer.row)
        message = (
            f"epoch {trainer.epoch_text()}  CrossEntropy={row['CrossEntropy']:.4f}  "
            f"SmoothL1={row['SmoothL1']:.4f}  lr={row['lr']:.2e}  "
            f"{row['samples_per_second']:.1f} img/s  {row['seconds']:.0f}s"
        )
        if row.get("budget_used") is not None:
            message += f"  budget {100 * row['budget_used']:.0f}%"
        if row.get("mAP_voc07") is not None:
            message += f"  mAP(VOC07)={row['mAP_voc07']:.4f}  mAP(area)={row['mAP_area']:.4f}"
        skipped = trainer.skipped_images
        if skipped:
            shown = ", ".join(skipped[:5]) + (f" and {len(skipped) - 5} more" if len(skipped) > 5 else "")
            message += f"  skipped {len(skipped)} undecodable images ({shown})"
        log(message, trainer.dist.rank)
        trainer.history.append(row)


class Checkpointing(HookBase):
    """Resumes the run (``resume``: "auto", a path, or "none") before training, and writes a checkpoint at the end
    of every epoch on rank 0 (``best.pt`` by VOC07 mAP); ``last`` is the newest checkpoint file."""

    def __init__(
        self,
        checkpointer: Checkpointer,
        resume: str | None,
        class_names: list[str],
        network: dict,
        config: dict,
        ema=None,
    ) -> None:
        self.checkpointer, self.resume = checkpointer, resume
        self.class_names, self.network, self.config = list(class_names), network, config
        self.ema = ema
        self.last: Path | None = None

    def before_train(self) -> None:
        trainer = self.trainer
        path, state = find_resume_state(
            self.resume, self.checkpointer, self.class_names, self.network, trainer.dist
        )
        if state is None:
            return
        trainer.load_state_dict(state)
        set_rng_state(state["rng"])
        self.last = path
        log(f"resumed from {path} (epoch {trainer.epoch}, step {trainer.step})", trainer.dist.rank)

    def after_epoch(self) -> None:
        trainer = self.trainer
        if trainer.dist.rank == 0:
            training = trainer.state_dict()
            state = make_checkpoint(
                training.pop("model"),
                self.class_names,
                self.network,
                trainer.model.detection.to_dict(),
                **training,
                rng=rng_state(),
                config=self.config,
                inference_weights=trainer.row.get("inference_weights", "ema" if self.ema else "model"),
            )
            self.last = self.checkpointer.save(state, trainer.epoch + 1, metric=trainer.row.get("mAP_voc07"))
        trainer.dist.barrier()


class CsvAndPlots(HookBase):
    """``out_dir/log.csv`` (the history) and ``loss.png`` / ``map.png`` after every epoch (rank 0)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)

    def after_epoch(self) -> None:
        if self.trainer.dist.rank == 0:
            write_csv(self.out_dir / "log.csv", self.trainer.history)
            plot_history(self.out_dir, self.trainer.history)


class TensorBoard(HookBase):
    """The history row's scalars under ``out_dir/tensorboard`` after every epoch (rank 0)."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.log: TensorBoardLog | None = None

    def before_train(self) -> None:
        self.log = TensorBoardLog(self.out_dir, self.trainer.dist.rank == 0)

    def after_epoch(self) -> None:
        self.log.add_row(self.trainer.row)

    def after_train(self) -> None:
        if self.log is not None:
            self.log.close()
