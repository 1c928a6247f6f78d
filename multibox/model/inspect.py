"""``inspect_model``: the table of an SSD's prediction layers, its parameter count and GFLOPs."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.flop_counter import FlopCounterMode

from multibox.model.builder import build_ssd
from multibox.model.ssd import SSD


@dataclass
class LayerRow:
    """One prediction layer: its input name, channels, map size, anchor sizes/ratios and anchor counts."""

    layer: str
    channels: int
    height: int
    width: int
    sizes: list[float]
    ratios: list[float]
    anchors_per_location: int

    @property
    def anchors(self) -> int:
        return self.height * self.width * self.anchors_per_location


@dataclass
class ModelSummary:
    """What ``multibox inspect model`` prints; ``str()`` renders it as a table."""

    network: str
    data_shape: tuple[int, int]
    num_classes: int
    rows: list[LayerRow] = field(default_factory=list)
    params: int = 0
    gflops: float | None = None  # forward, 2 FLOPs per multiply-add, batch 1, heads included, no NMS

    @property
    def total_anchors(self) -> int:
        return sum(r.anchors for r in self.rows)

    def __str__(self) -> str:
        h, w = self.data_shape
        head = f"{self.network}  input {h}x{w}  classes {self.num_classes} (+ background)"
        cols = ("layer", "shape (C, H, W)", "sizes", "ratios", "A/loc", "anchors")
        table = [cols]
        for r in self.rows:
            table.append(
                (
                    r.layer,
                    f"({r.channels}, {r.height}, {r.width})",
                    _fmt(r.sizes),
                    _fmt(r.ratios),
                    str(r.anchors_per_location),
                    str(r.anchors),
                )
            )
        table.append(("total", "", "", "", "", str(self.total_anchors)))
        widths = [max(len(row[i]) for row in table) for i in range(len(cols))]
        lines = [head, ""]
        for i, row in enumerate(table):
            lines.append(
                "  ".join(c.ljust(widths[j]) if j < 4 else c.rjust(widths[j]) for j, c in enumerate(row))
            )
            if i == 0 or i == len(table) - 2:
                lines.append("  ".join("-" * wd for wd in widths))
        lines.append("")
        lines.append(f"parameters  {self.params:,} ({self.params / 1e6:.2f} M)")
        if self.gflops is not None:
            lines.append(
                f"GFLOPs      {self.gflops:.2f} (forward, batch 1, 2 FLOPs per multiply-add, no NMS)"
            )
        return "\n".join(lines)


def _fmt(values: list[float]) -> str:
    return ", ".join(f"{v:.4g}" for v in values)


def summarize(
    model: SSD, name: str = "ssd", data_shape: tuple[int, int] | None = None, flops: bool = True
) -> ModelSummary:
    """The :class:`ModelSummary` of a model (GFLOPs from one forward under ``FlopCounterMode``)."""
    h, w = data_shape or model.data_shape
    summary = ModelSummary(name, (h, w), model.num_classes, params=sum(p.numel() for p in model.parameters()))
    for k, (fh, fw) in enumerate(model.feature_shapes(h, w)):
        summary.rows.append(
            LayerRow(
                model.from_layers[k] or model.layer_names[k],
                model.channels[k],
                fh,
                fw,
                model.sizes[k],
                model.ratios[k],
                model.num_anchors[k],
            )
        )
    if flops:
        was_training = model.training
        model.eval()
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            model(torch.zeros(1, 3, h, w, device=model.anchors.device))
        model.train(was_training)
        summary.gflops = counter.get_total_flops() / 1e9
    return summary


def inspect_model(
    name: str, data_shape: int = 300, num_classes: int = 20, flops: bool = True, **overrides
) -> ModelSummary:
    """Build network ``name`` (random weights) and summarise it; ``print(inspect_model("vgg16_reduced"))``."""
    model = build_ssd(name, num_classes, data_shape, **overrides)
    return summarize(model, name, (data_shape, data_shape), flops=flops)
