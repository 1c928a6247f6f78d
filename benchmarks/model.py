"""Our ``vgg16_reduced`` SSD300 against torchvision's ``ssd300_vgg16``, side by side in one process.

Both models have random weights and 20 object classes (+ background). Timed, median of ``--repeats``:

* forward: the network alone (ours ``model(x)``; torchvision ``head(backbone(x))``), eval, no grad;
* forward + detection: ours ``detect`` (channels_last, inference mode) vs torchvision's eval forward
  (its transform + postprocess included, as a user calls it);
* training step: loss, backward and an SGD step on the same images and boxes (ours contiguous and
  channels_last; torchvision as it comes).

    python benchmarks/model.py [--batch 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch
from torchvision.models.detection import ssd300_vgg16

from multibox.model import build_ssd


def paired_times(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of both, measured alternately (fair on a shared, noisy machine), after one warm-up."""
    ours(), theirs()
    times: tuple[list[float], list[float]] = ([], [])
    for i in range(repeats):
        order = ((0, ours), (1, theirs)) if i % 2 == 0 else ((1, theirs), (0, ours))
        for which, fn in order:
            start = time.perf_counter()
            fn()
            times[which].append(time.perf_counter() - start)
    return statistics.median(times[0]), statistics.median(times[1])


def random_boxes(batch: int, per_image: int = 3, seed: int = 0) -> tuple[torch.Tensor, list[dict]]:
    """Labels for ours (N, M, 5) normalised and targets for torchvision (pixels, labels 1..20)."""
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(batch, per_image, 2, generator=g) * 0.6
    wh = 0.1 + torch.rand(batch, per_image, 2, generator=g) * 0.3
    boxes = torch.cat([xy, xy + wh], dim=2)  # (N, M, 4) normalised
    classes = torch.randint(0, 20, (batch, per_image), generator=g)
    labels = torch.cat([classes[..., None].float(), boxes], dim=2)
    targets = [{"boxes": b * 300.0, "labels": c + 1} for b, c in zip(boxes, classes, strict=True)]
    return labels, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    n = args.batch
    images = torch.rand(n, 3, 300, 300)
    labels, targets = random_boxes(n)

    ours = build_ssd("vgg16_reduced", num_classes=20, data_shape=300)
    theirs = ssd300_vgg16(weights=None, weights_backbone=None, num_classes=21)
    cpu = platform.processor() or platform.machine()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {cpu}")
    print(
        f"params: ours {sum(p.numel() for p in ours.parameters()):,}, "
        f"torchvision {sum(p.numel() for p in theirs.parameters()):,}; batch {n}, 300x300\n"
    )
    rows = []

    ours.eval()
    theirs.eval()
    with torch.no_grad():
        t_ours, t_theirs = paired_times(
            lambda: ours(images), lambda: theirs.head(list(theirs.backbone(images).values())), args.repeats
        )
    rows.append(("forward (eval, no grad)", t_ours, t_theirs))

    image_list = list(images)
    ours_cl = ours.to(memory_format=torch.channels_last)
    images_cl = images.contiguous(memory_format=torch.channels_last)
    for name, per_class in (("MXNet decoding", False), ("per_class=True", True)):
        with torch.inference_mode():
            t_ours, t_theirs = paired_times(
                lambda pc=per_class: ours_cl.detect(images_cl, per_class=pc),
                lambda: theirs(image_list),
                args.repeats,
            )
        rows.append((f"forward + detection ({name})", t_ours, t_theirs))
    ours.to(memory_format=torch.contiguous_format)

    ours.train()
    theirs.train()
    opt_ours = torch.optim.SGD(ours.parameters(), lr=1e-4, momentum=0.9)
    opt_theirs = torch.optim.SGD(theirs.parameters(), lr=1e-4, momentum=0.9)

    def step_ours(batch: torch.Tensor) -> None:
        opt_ours.zero_grad(set_to_none=True)
        ours.loss(batch, labels)["loss"].backward()
        opt_ours.step()

    def step_theirs() -> None:
        opt_theirs.zero_grad(set_to_none=True)
        losses = theirs(image_list, targets)
        sum(losses.values()).backward()
        opt_theirs.step()

    t_ours, t_theirs = paired_times(lambda: step_ours(images), step_theirs, args.repeats)
    rows.append(("training step (ours contiguous)", t_ours, t_theirs))
    ours.to(memory_format=torch.channels_last)
    t_ours, t_theirs = paired_times(lambda: step_ours(images_cl), step_theirs, args.repeats)
    rows.append(("training step (ours channels_last)", t_ours, t_theirs))

    print(f"{'':40s} {'ours':>9s} {'torchvision':>12s} {'speed-up':>9s}")
    for name, a, b in rows:
        print(f"{name:40s} {a * 1000:7.0f}ms {b * 1000:10.0f}ms {b / a:8.2f}x")


if __name__ == "__main__":
    main()
