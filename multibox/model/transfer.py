"""Fine-tuning a trained detector onto other classes: every weight of the source detector (backbone, extras,
localisation heads, L2 scales, BatchNorm statistics) is kept, and the class heads keep the rows of background and
of every class whose name is in both class lists; new classes keep their fresh initialisation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from multibox.errors import DataError

CLASS_HEAD = "_cls_pred_conv"


@dataclass(frozen=True)
class ClassTransfer:
    """What :func:`transfer_detector_weights` did with the classes: names kept (with their rows), new, dropped."""

    kept: tuple[str, ...]
    new: tuple[str, ...]
    dropped: tuple[str, ...]

    def summary(self) -> str:
        def listed(names: tuple[str, ...]) -> str:
            shown = ", ".join(names[:6]) + (f" and {len(names) - 6} more" if len(names) > 6 else "")
            return f"{len(names)}" + (f" ({shown})" if names else "")

        return f"classes kept {listed(self.kept)}, new {listed(self.new)}, dropped {listed(self.dropped)}"


def class_rows(source_classes: Sequence[str], target_classes: Sequence[str]) -> list[int | None]:
    """For each target class row (0 = background, then ``target_classes``), the source row it takes, or None."""
    source_row = {name: row for row, name in enumerate(source_classes, start=1)}
    return [0] + [source_row.get(name) for name in target_classes]


def transfer_detector_weights(
    model: nn.Module,
    state: dict[str, torch.Tensor],
    source_classes: Sequence[str],
    target_classes: Sequence[str],
    source: str = "the source checkpoint",
) -> ClassTransfer:
    """Load ``state`` (a state dict of a detector of ``source_classes``) into ``model`` (the same network with
    ``target_classes``), mapping class-head rows by class name.

    A class head's output channels are ``anchor * (C + 1) + class`` (``flatten_predictions``' layout), so row
    ``r`` of the target takes source channel ``anchor * (C_source + 1) + rows[r]`` for every anchor. Raises
    :class:`DataError` naming the first weight that does not fit (another network or layout).
    """
    rows = class_rows(source_classes, target_classes)
    own = model.state_dict()
    merged = {}
    for name, target in own.items():
        if name not in state:
            raise DataError(
                f"{source} has no weight {name}: it is another network or network_options; fine-tune from a "
                "checkpoint of the same network"
            )
        weight = state[name]
        if CLASS_HEAD in name and _is_class_output(model, name):
            weight = _remap_class_rows(weight, target, rows, len(source_classes) + 1)
        if weight.shape != target.shape:
            raise DataError(
                f"{source}: weight {name} has shape {tuple(weight.shape)}, this network needs "
                f"{tuple(target.shape)}; fine-tune from a checkpoint of the same network and options"
            )
        merged[name] = weight
    model.load_state_dict(merged)
    kept = tuple(name for name in target_classes if name in set(source_classes))
    return ClassTransfer(
        kept=kept,
        new=tuple(name for name in target_classes if name not in set(source_classes)),
        dropped=tuple(name for name in source_classes if name not in set(target_classes)),
    )


def _is_class_output(model: nn.Module, name: str) -> bool:
    """Whether ``name`` is the weight or bias of the conv that outputs a class head's logits (for a depthwise
    head, its pointwise conv; the depthwise part has one channel per input channel and is copied as it is)."""
    module_name = name.rsplit(".", 1)[0]
    module = model.get_submodule(module_name)
    head = model.get_submodule(module_name.split(".")[0])
    last_conv = [m for m in head.modules() if isinstance(m, nn.Conv2d)][-1]
    return module is last_conv


def _remap_class_rows(
    weight: torch.Tensor, target: torch.Tensor, rows: list[int | None], source_width: int
) -> torch.Tensor:
    """The target class conv's weight (or bias) ``(A * (C_t + 1), ...)`` with the source rows that exist."""
    target_width = len(rows)
    anchors = target.shape[0] // target_width
    if weight.shape[0] != anchors * source_width or weight.shape[1:] != target.shape[1:]:
        return weight  # not the same layout: the shape check names it
    source = weight.reshape(anchors, source_width, *weight.shape[1:])
    out = target.detach().clone().reshape(anchors, target_width, *target.shape[1:])
    for row, source_row in enumerate(rows):
        if source_row is not None:
            out[:, row] = source[:, source_row]
    return out.reshape(target.shape)
