"""How a trained SSD turns its outputs into detections: the one set of decoding settings every door uses.

An :class:`~multibox.model.SSD` carries one (``model.detection``), its checkpoint stores it, and ``SSD.detect``
/ ``predict``, evaluation, ``multibox detect``, export and serve use it unless told otherwise. The operators in
``multibox.ops`` keep MXNet's own defaults as their contract; these are the defaults of a detector.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from multibox.errors import ConfigError


@dataclass(frozen=True)
class DetectionSettings:
    """Decoding of ``softmax(cls_preds)`` and ``loc_preds`` into at most ``max_detections`` rows per image.

    Attributes:
        threshold: smallest score kept as a candidate (evaluation keeps low scores: they count for AP).
        nms_threshold: IoU above which NMS suppresses the lower-scored box.
        nms_topk: candidates per class (``per_class``) or per image kept before NMS.
        max_detections: rows returned per image (None: one per anchor, the original's output).
        per_class: every class of an anchor is a candidate (as torchvision); False is the original's one class
            per anchor (MultiBoxDetection).
        force_suppress: NMS across classes.
        clip: boxes clipped to the image.
        display_threshold: the score a detection needs to be shown (``multibox detect``, serve, ``predict``)
            when the caller gives none; training sets it to the validation set's F1-best score.
    """

    threshold: float = 0.01
    nms_threshold: float = 0.45
    nms_topk: int = 400
    max_detections: int | None = 200
    per_class: bool = True
    force_suppress: bool = False
    clip: bool = True
    display_threshold: float = 0.5

    def __post_init__(self) -> None:
        if not 0 <= self.display_threshold <= 1:
            raise ConfigError(f"display_threshold must be in [0, 1], got {self.display_threshold}")
        if not 0 <= self.threshold < 1:
            raise ConfigError(f"detection threshold must be in [0, 1), got {self.threshold}")
        if not 0 < self.nms_threshold <= 1:
            raise ConfigError(f"nms_threshold must be in (0, 1], got {self.nms_threshold}")
        if self.nms_topk < 1:
            raise ConfigError(f"nms_topk must be >= 1, got {self.nms_topk}")
        if self.max_detections is not None and self.max_detections < 1:
            raise ConfigError(f"max_detections must be >= 1, got {self.max_detections}")

    def replace(self, **changes: Any) -> DetectionSettings:
        """These settings with ``changes``."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise ConfigError(f"unknown detection settings {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def updated(self, **changes: Any) -> DetectionSettings:
        """As :meth:`replace`, ignoring ``None`` values (options a user left unset)."""
        return self.replace(**{k: v for k, v in changes.items() if v is not None})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict | None) -> DetectionSettings:
        """Settings stored by :meth:`to_dict` (defaults for what is missing, e.g. in an older checkpoint)."""
        return cls().replace(**(values or {}))
