"""The base-network interface: an ``nn.Module`` whose named intermediate outputs ("taps") feed the SSD."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

CAFFE_MEAN = (123.0 / 255, 117.0 / 255, 104.0 / 255)
"""The original's (and caffe's) mean pixels (123, 117, 104) of 0..255 RGB, in 0..1 units."""
PIXEL_STD = (1.0 / 255, 1.0 / 255, 1.0 / 255)
"""No scaling: with ``CAFFE_MEAN`` the network sees ``255 x - mean``, 0..255 pixels minus the means."""


class Backbone(nn.Module):
    """A base network that yields its intermediate outputs by name, in order.

    Subclasses fill ``out_channels`` (every tappable name -> channels), optionally ``aliases`` (the MXNet
    example's names -> ours, e.g. ``"_plus12" -> "layer3"``) and implement :meth:`stages`, a generator of
    ``(name, tensor)`` pairs in network order. ``forward`` stops running stages once the last requested tap
    has been produced, so the classification tail of a network is never computed.

    ``input_mean`` / ``input_std`` (RGB, 0..1 units) are the input normalisation its weights expect.
    """

    out_channels: dict[str, int]
    aliases: dict[str, str]
    input_mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    input_std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __init__(self) -> None:
        super().__init__()
        self.out_channels = {}
        self.aliases = {}
        self.taps: tuple[str, ...] = ()

    def resolve(self, name: str) -> str:
        """Canonical tap name of ``name`` (an alias or a canonical name); ``KeyError`` if unknown."""
        canonical = self.aliases.get(name, name)
        if canonical not in self.out_channels:
            known = sorted(set(self.out_channels) | set(self.aliases))
            raise KeyError(
                f"{type(self).__name__} has no layer {name!r}; tappable layers: {', '.join(known)}"
            )
        return canonical

    def set_taps(self, names: Sequence[str]) -> list[int]:
        """Select the outputs ``forward`` returns (in this order); returns their channel counts."""
        self.taps = tuple(self.resolve(n) for n in names)
        return [self.out_channels[t] for t in self.taps]

    def stages(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, output)`` for every stage of the network, in order."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """``x`` (N, 3, H, W) normalised images -> the tapped feature maps, each (N, C_k, H_k, W_k)."""
        if not self.taps:
            raise RuntimeError("no taps selected: call set_taps([...]) first")
        wanted = set(self.taps)
        found: dict[str, torch.Tensor] = {}
        for name, out in self.stages(x):
            if name in wanted:
                found[name] = out
                if len(found) == len(wanted):
                    break
        return [found[t] for t in self.taps]


class SequentialBackbone(Backbone):
    """A backbone whose stages are its children, run one after the other (state-dict keys = layer names)."""

    def __init__(self, layers: Mapping[str, nn.Module]) -> None:
        super().__init__()
        for name, module in layers.items():
            self.add_module(name, module)

    def stages(self, x: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        for name, module in self.named_children():
            x = module(x)
            yield name, x
