"""Where a training run starts: the checkpoint to resume from, chosen and read on rank 0 and sent to every rank.

``resume="auto"`` takes the newest epoch checkpoint that loads (naming the newer ones it skipped),
``resume=PATH`` exactly that file, ``resume="none"`` (or None) a fresh start. A checkpoint of another network,
class list, data_shape or network_options is refused in one line. Stale temporary files of saves killed
midway are removed first.
"""

from __future__ import annotations

from pathlib import Path

from multibox.checkpoint import check_resumable, read_checkpoint, remove_stale_temporaries
from multibox.engine.checkpointer import Checkpointer
from multibox.engine.distributed import DistributedContext
from multibox.engine.train_logs import log
from multibox.errors import ConfigError, DataError


def find_resume_state(
    resume: str | None,
    checkpointer: Checkpointer,
    class_names: list[str],
    network: dict,
    dist: DistributedContext,
) -> tuple[Path | None, dict | None]:
    """The checkpoint path and state to resume from (``None, None`` for a fresh start), the same on every rank.

    Rank 0 alone reads the file; its state reaches the other ranks by broadcast, so nodes without a shared
    filesystem resume too. An error on rank 0 is raised on every rank.
    """
    outcome: dict = {}
    if dist.rank == 0:
        try:
            path, state = _choose_on_rank_zero(resume, checkpointer, class_names, network)
            outcome = {"path": path, "state": state}
        except (ConfigError, DataError, FileNotFoundError) as error:
            outcome = {"error": type(error).__name__, "message": str(error)}
    outcome = dist.broadcast_object(outcome)
    if "error" in outcome:
        kind = {"ConfigError": ConfigError, "DataError": DataError}.get(outcome["error"], FileNotFoundError)
        raise kind(outcome["message"])
    return outcome["path"], outcome["state"]


def _choose_on_rank_zero(
    resume: str | None, checkpointer: Checkpointer, class_names: list[str], network: dict
) -> tuple[Path | None, dict | None]:
    for stale in remove_stale_temporaries(checkpointer.directory):
        log(f"removed {stale}, left by a save that was interrupted")
    if resume is None or resume == "none":
        return None, None
    if resume == "auto":
        path, state = _newest_readable(checkpointer)
    else:
        path = Path(resume)
        state = read_checkpoint(path)
    if state is not None:
        check_resumable(state, path, class_names, network)
    return path, state


def _newest_readable(checkpointer: Checkpointer) -> tuple[Path | None, dict | None]:
    path, state, skipped = checkpointer.newest_readable()
    for bad, reason in skipped:
        log(f"skipped {bad.name} for resuming: {reason}")
    if path is None and skipped:
        raise DataError(
            f"no checkpoint in {checkpointer.directory} can be read ({len(skipped)} tried); "
            "move them away, or set resume=none to start afresh"
        )
    return path, state
