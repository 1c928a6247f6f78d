"""BatchNorm statistics recomputed from training batches before evaluation ("precise BN").

During training a BatchNorm layer normalises with the batch's statistics but keeps, for evaluation, a running
average with a small momentum (0.01 in EfficientNet-Lite and MobileNetV3). While the weights still move fast,
as when training from scratch, that average lags behind the network, and an evaluation that uses it can score
near zero although the training loss is fine. Recomputing the statistics as the plain mean over a few batches
with the current weights removes the lag.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


@torch.no_grad()
def recompute_batchnorm_statistics(
    model: nn.Module | Sequence[nn.Module],
    batches: Iterable,
    num_batches: int,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda images: images,
) -> int:
    """Set every BatchNorm's running mean and variance to their average over ``num_batches`` batches.

    Args:
        model: the network (or several, e.g. the weights and their average, fed the same batches); it runs
            forward in training mode (batch statistics), without gradients.
        batches: yields ``(images, ...)``; ``prepare`` moves/converts the images (device, memory format).
        num_batches: how many batches to average.

    Returns:
        The number of batches used (0 when the model has no BatchNorm layer).
    """
    models = list(model) if isinstance(model, Sequence) else [model]
    layers = [
        m for net in models for m in net.modules() if isinstance(m, _BatchNorm) and m.track_running_stats
    ]
    if not layers or num_batches <= 0:
        return 0
    momenta = [m.momentum for m in layers]
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # a cumulative average: the exact mean of the batch statistics
    was_training = [net.training for net in models]
    for net in models:
        net.train()
    used = 0
    try:
        for batch in batches:
            if batch[0].shape[0] == 0:  # every image of the batch failed to decode
                continue
            images = prepare(batch[0])
            for net in models:
                net(images)
            used += 1
            if used >= num_batches:
                break
    finally:
        for layer, momentum in zip(layers, momenta, strict=True):
            layer.momentum = momentum
        for net, mode in zip(models, was_training, strict=True):
            net.train(mode)
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        world = torch.distributed.get_world_size()
        for layer in layers:
            for buffer in (layer.running_mean, layer.running_var):
                torch.distributed.all_reduce(buffer)
                buffer.div_(world)
    return used
