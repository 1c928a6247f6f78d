"""``multibox weights list`` and ``multibox weights import``: trained detectors from torchvision and the original
MXNet example, written as regular multibox checkpoints (for detect, evaluate, export, serve and ``finetune=``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from multibox.cli_args import positive_int
from multibox.errors import ConfigError


def add_weights_command(sub: argparse._SubParsersAction) -> None:
    weights = sub.add_parser("weights", help="trained detectors to start from: list and import them")
    commands = weights.add_subparsers(dest="weights_command")
    commands.required = True
    commands.add_parser("list", help="the known trained detectors, their published accuracy and licence")
    imported = commands.add_parser(
        "import",
        help="write a trained detector as a multibox checkpoint",
        description="SOURCE is torchvision:ARCH (downloaded through torchvision's weights API), or a local file: "
        "a torchvision state dict (--from torchvision:ARCH) or the original's PREFIX-EPOCH.params (--from mxnet).",
    )
    imported.add_argument(
        "source", help="torchvision:ssd300_vgg16, torchvision:ssdlite320_mobilenet_v3_large, or a file"
    )
    imported.add_argument("--out", required=True, help="the checkpoint to write (.pt)")
    imported.add_argument("--from", dest="origin", help="what a local file is: torchvision:ARCH or mxnet")
    imported.add_argument("--network", help="mxnet: the preset the file was trained as (e.g. vgg16_reduced)")
    imported.add_argument("--data-shape", type=positive_int, help="mxnet: the input size it was trained at")
    imported.add_argument("--num-classes", type=positive_int, help="the number of object classes (a check)")
    imported.add_argument("--class-names", help="a text file, one class name per line")
    imported.add_argument("--overwrite", action="store_true", help="replace --out if it exists")


def run_weights(args: argparse.Namespace) -> int:
    if args.weights_command == "list":
        return _list()
    out = Path(args.out)
    if out.exists() and not args.overwrite:
        raise ConfigError(f"{out} exists; choose another --out or add --overwrite")
    from multibox.checkpoint import atomic_save

    state = _imported_checkpoint(args)
    if args.num_classes is not None and args.num_classes != len(state["class_names"]):
        raise ConfigError(
            f"{args.source} has {len(state['class_names'])} classes, not --num-classes {args.num_classes}"
        )
    atomic_save(state, out)
    network, detection = state["network"], state["detection"]
    print(
        f"wrote {out}: {network['name']} at {network['data_shape']} px, {network['num_classes']} classes "
        f"({', '.join(state['class_names'][:4])}, ...); decoding: score >= {detection['threshold']}, "
        f"NMS {detection['nms_threshold']}, top {detection['nms_topk']}, "
        f"{detection['max_detections'] or 'a row per anchor'} per image"
    )
    return 0


def _list() -> int:
    from multibox.inference.pretrained import PRETRAINED

    for source in PRETRAINED.values():
        how = (
            "downloaded by `multibox weights import`"
            if source.download
            else "download the file, then import it"
        )
        print(f"{source.name}\n  network {source.network}; trained on {source.data}")
        print(f"  published: {source.published}\n  licence: {source.licence}; {how}")
    return 0


def _imported_checkpoint(args: argparse.Namespace) -> dict:
    class_names = _read_class_names(args.class_names) if args.class_names else None
    from multibox.inference.pretrained import PRETRAINED, pretrained_checkpoint

    if args.source in PRETRAINED or args.source.startswith("torchvision:"):
        if args.origin is not None:
            raise ConfigError(f"--from is for local files; {args.source} names a known source")

        return pretrained_checkpoint(args.source)
    path = Path(args.source)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist (or give torchvision:ARCH to download)")
    origin = args.origin or ("mxnet" if path.suffix == ".params" else None)
    if origin is None:
        raise ConfigError(f"say what {path} is: --from torchvision:ARCH or --from mxnet")
    if origin.startswith("torchvision:"):
        from multibox.model.import_torchvision import torchvision_checkpoint

        return torchvision_checkpoint(origin.split(":", 1)[1], path, class_names=class_names)
    if origin == "mxnet":
        return _mxnet_checkpoint(path, args, class_names)
    raise ConfigError(f"--from {origin!r}: use torchvision:ARCH or mxnet")


def _mxnet_checkpoint(path: Path, args: argparse.Namespace, class_names: list[str] | None) -> dict:
    given = (("--network", args.network), ("--data-shape", args.data_shape), ("--class-names", class_names))
    needed = [flag for flag, value in given if not value]
    if needed:
        raise ConfigError(
            f"importing {path} from mxnet needs {', '.join(needed)}: a .params file holds weights only"
        )
    from multibox.model.import_mxnet import mxnet_checkpoint

    return mxnet_checkpoint(path, args.network, args.data_shape, class_names)


def _read_class_names(path: str) -> list[str]:
    from multibox.data.formats.classes import read_class_names

    names = read_class_names(path)
    if not names:
        raise ConfigError(f"--class-names {path} holds no class name (one per line)")
    return names
