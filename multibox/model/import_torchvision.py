"""torchvision detection models -> multibox SSDs and checkpoints (issue 16): ``ssd300_vgg16`` and
``ssdlite320_mobilenet_v3_large``.

:func:`import_torchvision_ssd` maps every parameter and buffer of a torchvision SSD model onto the multibox
network of the same layers (``torchvision_ssd300_vgg16``: the same VGG, extras and 3x3 heads;
``torchvision_ssdlite320_mobilenet_v3_large``: the reduced-tail MobileNet v3, SSDLite extras and heads), whose
channel layout per location is torchvision's too, with anchors by ``anchor_style="torchvision"``, and gives it
torchvision's post-processing as ``model.detection``. :func:`torchvision_checkpoint` builds a regular multibox
checkpoint from a torchvision weights name or file, which :func:`multibox.inference.load_checkpoint_model`
rebuilds by network name.

Classes: torchvision's output ``k`` (``k = 0`` background) is multibox class ``k - 1``; for COCO_V1 the names
are the weights' ``categories`` without ``__background__``, the ten ``"N/A"`` slots kept as ``"N/A <id>"`` (names
must be unique), so class ``i`` is COCO category id ``i + 1`` as in torchvision.

Remaining differences, all at float32 rounding level: multibox decodes in normalised coordinates (torchvision
in pixels), its L2 normalisation (SSD300) adds 1e-10 under the root (torchvision clamps the norm at 1e-12), its
input normalisation is ``x / std - mean / std``, NMS suppresses at IoU >= threshold (torchvision: >) and
candidates need score >= threshold (torchvision: >); torchvision also caps ``dw``, ``dh`` at log(1000 / 16)
before the exponential, which only matters for boxes over 62 times an anchor's size.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
import torchvision
from torch import nn
from torchvision.models import detection
from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.ssd import SSD as TorchvisionSSD
from torchvision.models.detection.ssd import SSDFeatureExtractorVGG, SSDHead
from torchvision.models.detection.ssdlite import SSDLiteFeatureExtractorMobileNet, SSDLiteHead

from multibox.checkpoint import load_state_dict_file, make_checkpoint, network_description
from multibox.errors import ConfigError, DataError
from multibox.model.builder import build_ssd
from multibox.model.detection_settings import DetectionSettings
from multibox.model.networks import build_backbone
from multibox.model.ssd import SSD


@dataclass(frozen=True)
class Architecture:
    """A torchvision SSD builder and what its import needs.

    Attributes:
        network: the multibox network of the same layers.
        weights: the torchvision weights enum; size: the input size.
        extractor, head: torchvision's backbone and head classes.
        base: state-dict prefixes (under ``backbone.``) of the base network; the rest of ``backbone.extra``
            (from ``first_extra``) are the extra blocks.
        cls_key, cls_anchors: the first classification conv's key and anchors (class count of a file).
    """

    network: str
    weights: str
    size: int
    extractor: type
    head: type
    base: tuple[str, ...]
    first_extra: int
    cls_key: str
    cls_anchors: int


ARCHITECTURES = {
    "ssd300_vgg16": Architecture(
        "torchvision_ssd300_vgg16",
        "SSD300_VGG16_Weights",
        300,
        SSDFeatureExtractorVGG,
        SSDHead,
        ("features.", "extra.0."),
        1,
        "head.classification_head.module_list.0.weight",
        4,
    ),
    "ssdlite320_mobilenet_v3_large": Architecture(
        "torchvision_ssdlite320_mobilenet_v3_large",
        "SSDLite320_MobileNet_V3_Large_Weights",
        320,
        SSDLiteFeatureExtractorMobileNet,
        SSDLiteHead,
        ("features.",),
        0,
        "head.classification_head.module_list.0.1.weight",
        6,
    ),
}


def import_torchvision_ssd(
    tv_model: nn.Module, class_names: Sequence[str] | None = None
) -> tuple[SSD, list[str]]:
    """A torchvision SSD model (``ssd300_vgg16``, ``ssdlite320_mobilenet_v3_large``) -> the same detector as a
    multibox SSD (eval mode), and its class names.

    ``class_names``: one per object class (torchvision's outputs without background); default the COCO_V1
    categories for a 91-output model. Raises :class:`~multibox.errors.ConfigError` for a model of another
    architecture, anchors, input size or box coder.
    """
    model, names, _ = _convert(tv_model, class_names)
    return model, names


def torchvision_checkpoint(
    arch: str = "ssd300_vgg16",
    weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = "COCO_V1",
    *,
    class_names: Sequence[str] | None = None,
) -> dict:
    """A multibox checkpoint (:func:`multibox.checkpoint.make_checkpoint`) of torchvision's ``arch`` with
    ``weights``: a torchvision weights name (``"COCO_V1"``, ``"DEFAULT"``, ``"SSD300_VGG16_Weights.COCO_V1"``;
    downloaded by torchvision unless cached), a local state-dict file or a state dict (torchvision's keys, e.g.
    the file at the weights' URL), or ``None`` (torchvision's random initialisation)."""
    source = "a state dict" if isinstance(weights, Mapping) else None if weights is None else str(weights)
    return checkpoint_of(load_torchvision_model(arch, weights), class_names, weights=source)


def checkpoint_of(tv_model: nn.Module, class_names: Sequence[str] | None = None, *, weights=None) -> dict:
    """The multibox checkpoint of a torchvision model object (see :func:`import_torchvision_ssd`); an input
    normalisation other than its builder's default is kept in the network options. ``weights``: provenance."""
    model, names, options = _convert(tv_model, class_names)
    arch = _architecture_of(tv_model)
    network = network_description(
        ARCHITECTURES[arch].network, model.num_classes, ARCHITECTURES[arch].size, options
    )
    return make_checkpoint(
        model.state_dict(),
        names,
        network,
        model.detection.to_dict(),
        imported_from={
            "library": f"torchvision {torchvision.__version__}",
            "arch": arch,
            "weights": weights,
        },
    )


def load_torchvision_model(
    arch: str, weights: str | os.PathLike | Mapping[str, torch.Tensor] | None = None
) -> nn.Module:
    """torchvision's detection model ``arch`` (eval mode) with ``weights`` (see :func:`torchvision_checkpoint`);
    the backbone's ImageNet weights are never fetched."""
    if arch not in ARCHITECTURES:
        raise ConfigError(f"cannot import torchvision {arch!r}; supported: {', '.join(ARCHITECTURES)}")
    spec = ARCHITECTURES[arch]
    builder, enum = getattr(detection, arch), getattr(detection, spec.weights)
    if weights is None:
        return builder(weights=None, weights_backbone=None).eval()
    if not isinstance(weights, Mapping) and not os.path.isfile(weights):
        return _named_weights_model(builder, enum, str(weights))
    state = weights if isinstance(weights, Mapping) else load_state_dict_file(weights, "torchvision weights")
    if not isinstance(state.get(spec.cls_key), torch.Tensor):
        raise DataError(f"{_what(weights)} is not a torchvision {arch} state dict (it has no {spec.cls_key})")
    num_classes = state[spec.cls_key].shape[0] // spec.cls_anchors
    tv_model = builder(weights=None, weights_backbone=None, num_classes=num_classes)
    try:
        tv_model.load_state_dict(state)
    except RuntimeError as error:
        raise DataError(
            f"{_what(weights)} does not fit torchvision's {arch} ({_one_line(error, 200)})"
        ) from error
    return tv_model.eval()


def _what(weights) -> str:
    return "the state dict" if isinstance(weights, Mapping) else str(weights)


def _one_line(error: Exception, limit: int) -> str:
    return " ".join(str(error).split())[:limit]


def _named_weights_model(builder, enum, name: str) -> nn.Module:
    if os.sep in name or name.endswith((".pth", ".pt")):
        raise DataError(f"weights file not found: {name}")
    member = name.split(".", 1)[1] if name.startswith(enum.__name__ + ".") else name
    if member not in enum.__members__:
        raise ConfigError(
            f"{name!r} is neither a file nor a {enum.__name__} member ({', '.join(enum.__members__)})"
        )
    chosen = enum[member]
    try:
        return builder(weights=chosen, weights_backbone=None).eval()
    except Exception as error:  # no network, proxy, disk, hash mismatch ...
        raise DataError(
            f"could not fetch {enum.__name__}.{chosen.name} ({type(error).__name__}: {_one_line(error, 120)}); "
            f"download {chosen.url} where the internet is reachable and import that file (multibox weights "
            f"import FILE --from torchvision:ARCH, or weights=FILE)"
        ) from error


# ---------------------------------------------------------------------------------------------- conversion
def _architecture_of(tv_model: nn.Module) -> str:
    """The :data:`ARCHITECTURES` name of ``tv_model`` (by its backbone and head), or a one-line ConfigError."""
    if not isinstance(tv_model, TorchvisionSSD):
        raise ConfigError(
            f"expected a torchvision SSD model ({', '.join(ARCHITECTURES)}), got {type(tv_model).__name__}"
        )
    for name, spec in ARCHITECTURES.items():
        if isinstance(tv_model.backbone, spec.extractor) and isinstance(tv_model.head, spec.head):
            return name
    raise ConfigError(
        f"cannot import a torchvision SSD of {type(tv_model.backbone).__name__} and {type(tv_model.head).__name__}; "
        f"supported: {', '.join(ARCHITECTURES)}"
    )


def _convert(tv_model: nn.Module, class_names) -> tuple[SSD, list[str], dict]:
    """The multibox SSD of ``tv_model``, its class names and the network options that rebuild it."""
    spec = ARCHITECTURES[_architecture_of(tv_model)]
    _check_settings(tv_model, spec)
    num_outputs = tv_model.head.classification_head.num_columns
    names = _class_names(num_outputs, class_names, spec)
    base = build_backbone(spec.network)
    mean, std = list(tv_model.transform.image_mean), list(tv_model.transform.image_std)
    same_input = (mean, std) == (list(base.input_mean), list(base.input_std))
    options = {} if same_input else {"image_mean": mean, "image_std": std}
    model = build_ssd(spec.network, num_outputs - 1, spec.size, backbone=base, **options)
    _check_anchors(tv_model, model, spec)
    model.load_state_dict(_converted_state(tv_model, model, spec))
    model.detection = DetectionSettings(
        threshold=float(tv_model.score_thresh),
        nms_threshold=float(tv_model.nms_thresh),
        nms_topk=int(tv_model.topk_candidates),
        max_detections=int(tv_model.detections_per_img),
        per_class=True,
        force_suppress=False,
        clip=True,
    )
    return model.eval(), names, options


def _class_names(num_outputs: int, class_names, spec: Architecture) -> list[str]:
    if class_names is None:
        categories = getattr(detection, spec.weights).COCO_V1.meta["categories"]
        if num_outputs != len(categories):
            raise ConfigError(
                f"the model has {num_outputs} outputs, not COCO's {len(categories)}: give its class names "
                f"(--class-names FILE, or class_names=; {num_outputs - 1} names, background excluded)"
            )
        # the unused COCO ids are all "N/A": named apart (with the id) so every class name is unique
        return [f"N/A {k}" if name == "N/A" else name for k, name in enumerate(categories[1:], start=1)]
    names = [str(n) for n in class_names]
    if len(names) != num_outputs - 1:
        raise ConfigError(
            f"{len(names)} class names for a model of {num_outputs} outputs: give {num_outputs - 1} "
            "(background excluded)"
        )
    return names


def _check_settings(tv_model: nn.Module, spec: Architecture) -> None:
    """The input size and box coder of torchvision's builder, or a one-line ConfigError saying what differs."""
    problems = []
    if not isinstance(tv_model.anchor_generator, DefaultBoxGenerator):
        problems.append(
            f"anchor generator {type(tv_model.anchor_generator).__name__} is not DefaultBoxGenerator"
        )
    if tuple(tv_model.box_coder.weights) != (10.0, 10.0, 5.0, 5.0):
        problems.append(f"box coder weights {tuple(tv_model.box_coder.weights)} are not (10, 10, 5, 5)")
    if tuple(tv_model.transform.fixed_size or ()) != (spec.size, spec.size):
        problems.append(f"input size {tv_model.transform.fixed_size} is not ({spec.size}, {spec.size})")
    if problems:
        raise ConfigError(f"cannot import this torchvision SSD: {'; '.join(problems)}")


def _check_anchors(tv_model: nn.Module, model: SSD, spec: Architecture) -> None:
    """torchvision's anchors on our feature-map sizes must be ours, to the bit (in pixels)."""
    size = spec.size
    maps = [torch.zeros(1, 1, h, w) for h, w in model.feature_shapes(size, size)]
    try:
        theirs = tv_model.anchor_generator(ImageList(torch.zeros(1, 3, size, size), [(size, size)]), maps)[0]
    except (IndexError, RuntimeError, ValueError) as error:
        raise ConfigError(
            f"cannot import this torchvision SSD: its anchors do not fit ({_one_line(error, 160)})"
        ) from error
    if theirs.shape != model.anchors.shape or not torch.equal(model.anchors * size, theirs):
        raise ConfigError(
            f"cannot import this torchvision SSD: its anchors are not {spec.network}'s "
            f"({tuple(theirs.shape)} vs {tuple(model.anchors.shape)})"
        )


_LAYERS = (nn.Conv2d, nn.BatchNorm2d, nn.MaxPool2d)  # the layers whose state or geometry are compared


def _layers(module: nn.Module, prefix: str, only: tuple[str, ...] = ("",)) -> list[tuple[str, nn.Module]]:
    """``module``'s convolutions, BatchNorms and max-pools in network order, as ``(full name, layer)``,
    those under one of the ``only`` prefixes (relative to ``module``)."""
    return [
        (f"{prefix}.{name}" if name else prefix, m)
        for name, m in module.named_modules()
        if isinstance(m, _LAYERS) and name.startswith(only)
    ]


def _module_pairs(tv_model: nn.Module, model: SSD, spec: Architecture) -> list[tuple]:
    """``(torchvision name, layer, multibox name, layer)`` for every layer, in network order: the base
    network, the extra blocks, the heads (each list must match one to one)."""
    sides = [(_layers(tv_model.backbone, "backbone", spec.base), _layers(model.backbone, "backbone"))]
    extras = [e for e in model.extra_names if e is not None]
    blocks = list(tv_model.backbone.extra)[spec.first_extra :]
    if len(blocks) != len(extras):
        raise ConfigError(f"the model has {len(blocks)} extra blocks, {spec.network} {len(extras)}")
    for k, (block, extra) in enumerate(zip(blocks, extras, strict=True)):
        tv_name = f"backbone.extra.{k + spec.first_extra}"
        ours = _layers(getattr(model, f"{extra}_conv_1x1"), f"{extra}_conv_1x1")
        sides.append(
            (
                _layers(block, tv_name),
                ours + _layers(getattr(model, f"{extra}_conv_3x3"), f"{extra}_conv_3x3"),
            )
        )
    for k, base in enumerate(model.layer_names):
        for head, ours in (("regression_head", "loc"), ("classification_head", "cls")):
            conv = getattr(tv_model.head, head).module_list[k]
            name = f"{base}_{ours}_pred_conv"
            sides.append((_layers(conv, f"head.{head}.module_list.{k}"), _layers(getattr(model, name), name)))
    pairs = []
    for theirs, ours in sides:
        if len(theirs) != len(ours):
            where = theirs[0][0] if theirs else ours[0][0]
            raise ConfigError(f"{where}: {len(theirs)} layers where {spec.network} has {len(ours)}")
        pairs += [(a, m, b, n) for (a, m), (b, n) in zip(theirs, ours, strict=True)]
    return pairs


def _geometry(module: nn.Module) -> tuple:
    if isinstance(module, nn.Conv2d):
        fields = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups")
        return ("conv", *(getattr(module, f) for f in fields), module.bias is not None)
    if isinstance(module, nn.BatchNorm2d):
        return ("batchnorm", module.num_features, module.eps, module.affine, module.track_running_stats)
    fields = ("kernel_size", "stride", "padding", "dilation")
    values = (getattr(module, f) for f in fields)
    return ("pool", *(tuple(v) if isinstance(v, (tuple, list)) else (v, v) for v in values), module.ceil_mode)


def _converted_state(tv_model: nn.Module, model: SSD, spec: Architecture) -> dict[str, torch.Tensor]:
    """Every tensor of ``tv_model.state_dict()`` under its multibox name (checked one to one, shapes too)."""
    tv_state = tv_model.state_dict()
    state, used = {}, set()
    if "backbone.scale_weight" in tv_state:  # SSD300's L2-norm scale of conv4_3
        state["relu4_3_scale"] = tv_state["backbone.scale_weight"].detach().view(1, -1, 1, 1).clone()
        used.add("backbone.scale_weight")
    for tv_name, tv_module, name, module in _module_pairs(tv_model, model, spec):
        if _geometry(tv_module) != _geometry(module):
            raise ConfigError(f"{tv_name} {_geometry(tv_module)} does not match {name} {_geometry(module)}")
        for key in tv_module.state_dict():
            state[f"{name}.{key}"] = tv_state[f"{tv_name}.{key}"].detach().clone()
            used.add(f"{tv_name}.{key}")
    left = sorted(set(tv_state) - used)
    missing = sorted(set(model.state_dict()) - set(state))
    if left or missing:
        raise ConfigError(
            f"cannot map every tensor: torchvision's {left[:4]} left, multibox's {missing[:4]} unset"
        )
    return state
