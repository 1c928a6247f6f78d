"""The original MXNet example's trained models -> multibox SSDs and checkpoints (issue 16): ``vgg16_reduced``
(300 and 512), the pre-activation ``resnet50`` / ``resnet101`` (multibox's ``resnet50_v2`` / ``resnet101_v2``)
and ``inceptionv3`` (multibox's ``inceptionv3_mxnet``): :data:`NETWORKS`.

A ``save_checkpoint`` ``.params`` file of apache/mxnet's ``example/ssd`` (``ssd_vgg16_reduced_300-0000.params``,
or the ``deploy_`` one of its deploy.py; read with numpy alone by :mod:`multibox.model.mxnet_params`) holds
``arg:`` arrays named after the original's symbols. multibox's parameter names follow those symbols, so the
import is a renaming (:func:`mxnet_name`):

* ``backbone.`` is dropped and every ``.`` becomes ``_``: ``backbone.conv4_3.weight`` <- ``conv4_3_weight``,
  ``backbone.fc6.bias`` <- ``fc6_bias``, ``relu4_3_loc_pred_conv.weight`` <- ``relu4_3_loc_pred_conv_weight``,
  ``multi_feat_2_conv_3x3_relu_cls_pred_conv.bias`` <- ``multi_feat_2_conv_3x3_relu_cls_pred_conv_bias``;
* the extra layers' convolutions carry the original's ``_conv`` suffix: ``multi_feat_2_conv_1x1.weight`` <-
  ``multi_feat_2_conv_1x1_conv_weight``;
* ``relu4_3_scale`` (1, 512, 1, 1) keeps its name;
* BatchNorm: ``weight`` / ``bias`` <- ``arg:`` ``_gamma`` / ``_beta``, ``running_mean`` / ``running_var`` <-
  ``aux:`` ``_moving_mean`` / ``_moving_var`` (``backbone.stage3_unit6.bn2.running_var`` <-
  ``aux:stage3_unit6_bn2_moving_var``); gammas of ``fix_gamma`` BatchNorms (ResNet's ``bn_data``, all of
  Inception-v3) are read but, as in MXNet, unused;
* a backbone with torchvision's module names carries a ``mxnet_names`` table instead (Inception-v3:
  ``Mixed_5b.branch5x5_2.conv`` <- ``mixed_tower_conv_1_conv2d``).

Every array is copied as is: the original's heads flatten ``(N, A (C+1), H, W)`` by ``transpose(0, 2, 3, 1)``
and ``Flatten`` (channel ``a (C+1) + c`` is anchor ``a``, class ``c``; ``4 a + j`` its offset ``j``), which is
:func:`multibox.model.layers.flatten_predictions`; class 0 is background in both. Input: the original
subtracts the mean pixels (123, 117, 104) from RGB 0..255 pixels and divides by nothing
(``backbones.base.CAFFE_MEAN``, ``PIXEL_STD``), set as the SSD's ``image_mean`` / ``image_std``. Decoding: the
original's ``MultiBoxDetection`` (one class per anchor, ``per_class=False``, every anchor's row returned) with
deploy.py's settings (:data:`MXNET_DEPLOY_DETECTION`: NMS 0.5 across classes, top 400, threshold 0.01) unless another
:class:`~multibox.model.DetectionSettings` is given (:data:`MXNET_EVALUATE_DETECTION` is evaluate.py's).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from multibox.checkpoint import make_checkpoint, network_description
from multibox.errors import ConfigError, DataError
from multibox.model.backbones.base import CAFFE_MEAN, PIXEL_STD
from multibox.model.builder import build_ssd
from multibox.model.detection_settings import DetectionSettings
from multibox.model.mxnet_params import read_mxnet_checkpoint_params
from multibox.model.ssd import SSD

__all__ = [
    "MXNET_DEPLOY_DETECTION",
    "MXNET_EVALUATE_DETECTION",
    "NETWORKS",
    "import_mxnet_params",
    "mxnet_checkpoint",
    "multibox_network",
    "mxnet_name",
    "mxnet_names",
    "mxnet_network_options",
]

# the original's presets multibox has layer for layer: its --network name -> multibox's network
NETWORKS = {
    "vgg16_reduced": "vgg16_reduced",
    "resnet50": "resnet50_v2",
    "resnet101": "resnet101_v2",
    "inceptionv3": "inceptionv3_mxnet",
}
# deploy.py's symbol (--nms 0.5, force_suppress on, --topk 400) with MultiBoxDetection's own threshold / clip
MXNET_DEPLOY_DETECTION = DetectionSettings(
    threshold=0.01,
    nms_threshold=0.5,
    nms_topk=400,
    max_detections=None,
    per_class=False,
    force_suppress=True,
    clip=True,
)
# evaluate.py's (--nms 0.45, class-wise NMS), the settings of the published mAP
MXNET_EVALUATE_DETECTION = MXNET_DEPLOY_DETECTION.replace(nms_threshold=0.45, force_suppress=False)

# the original's default --class-names
VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)

_EXTRA_CONV = re.compile(r"multi_feat_\d+_conv_(1x1|3x3)")
_BATCHNORM = {
    "weight": "{}_gamma",
    "bias": "{}_beta",
    "running_mean": "aux:{}_moving_mean",
    "running_var": "aux:{}_moving_var",
}
_SHOWN = 4  # names listed per kind of problem in an error


def mxnet_network_options() -> dict:
    """The network options of an imported model: the original's input normalisation in 0..1 units."""
    return {"image_mean": list(CAFFE_MEAN), "image_std": list(PIXEL_STD)}


def mxnet_name(key: str, batchnorm: bool = False) -> str:
    """The original's name of a multibox state-dict ``key`` (see the module docstring), with ``aux:`` in front
    for a BatchNorm's running statistics (``batchnorm``: ``key`` belongs to a BatchNorm)."""
    module, dot, param = key.removeprefix("backbone.").rpartition(".")
    if not dot:
        return param
    module = module.replace(".", "_")
    if _EXTRA_CONV.fullmatch(module):
        module += "_conv"
    if batchnorm:
        return _BATCHNORM[param].format(module)
    return f"{module}_{param}"


def mxnet_names(model: SSD) -> dict[str, str]:
    """The original's name (``aux:`` for auxiliary states) -> multibox state-dict key, for every tensor of
    ``model`` that MXNet has (not BatchNorm's ``num_batches_tracked``). A backbone whose module names are not
    MXNet's carries a ``mxnet_names`` table (module path -> MXNet layer name, e.g. Inception-v3's
    ``Mixed_5b.branch1x1.conv`` -> ``mixed_conv_conv2d``)."""
    batchnorms = {name for name, m in model.named_modules() if isinstance(m, torch.nn.BatchNorm2d)}
    renames = getattr(model.backbone, "mxnet_names", {})
    names = {}
    for key in model.state_dict():
        module, _, param = key.rpartition(".")
        is_batchnorm = module in batchnorms
        if is_batchnorm and param == "num_batches_tracked":
            continue
        layer = renames.get(module.removeprefix("backbone.")) if module.startswith("backbone.") else None
        if layer is None:
            names[mxnet_name(key, is_batchnorm)] = key
        else:
            names[_BATCHNORM[param].format(layer) if is_batchnorm else f"{layer}_{param}"] = key
    return names


def multibox_network(network: str) -> str:
    """multibox's network for the original's ``--network`` name (or for one of multibox's names in
    :data:`NETWORKS`); a one-line ConfigError for the others."""
    if network in NETWORKS:
        return NETWORKS[network]
    if network in NETWORKS.values():
        return network
    raise ConfigError(
        f"cannot import the original's {network!r} parameters; supported: {', '.join(NETWORKS)}"
    )


def import_mxnet_params(
    arg: Mapping[str, np.ndarray],
    aux: Mapping[str, np.ndarray] | None = None,
    network: str = "vgg16_reduced",
    num_classes: int = 20,
    data_shape: int = 300,
    *,
    detection: DetectionSettings = MXNET_DEPLOY_DETECTION,
) -> SSD:
    """The original's ``arg_params`` / ``aux_params`` (names without the ``arg:`` / ``aux:`` prefix, as
    :func:`~multibox.model.mxnet_params.read_mxnet_checkpoint_params` gives them) of its ``network`` preset
    (``vgg16_reduced``, ``resnet50``, ``resnet101``) trained at ``data_shape``, as a multibox SSD (eval mode)
    that computes what the original computes: its layers, input normalisation and ``detection`` settings.

    Raises :class:`~multibox.errors.ConfigError` for a network other than :data:`NETWORKS` and
    :class:`~multibox.errors.DataError`, in one line naming them, for missing, unexpected or wrong-shape
    arrays (and for a file of another class count).
    """
    model = build_ssd(multibox_network(network), num_classes, data_shape, **mxnet_network_options())
    model.load_state_dict(_state_dict(model, arg, aux or {}))
    model.detection = detection
    return model.eval()


def mxnet_checkpoint(
    params_path: str | os.PathLike,
    network: str = "vgg16_reduced",
    data_shape: int = 300,
    class_names: Sequence[str] | None = None,
    *,
    detection: DetectionSettings = MXNET_DEPLOY_DETECTION,
) -> dict:
    """A multibox checkpoint (:func:`multibox.checkpoint.make_checkpoint`) of the original's ``.params`` file
    that :func:`multibox.inference.load_checkpoint_model` rebuilds; ``network`` as in
    :func:`import_mxnet_params`, ``class_names`` default to the original's ``--class-names`` (the 20 VOC
    classes)."""
    names = list(VOC_CLASSES if class_names is None else class_names)
    arg, aux = read_mxnet_checkpoint_params(params_path)
    try:
        model = import_mxnet_params(arg, aux, network, len(names), data_shape, detection=detection)
    except DataError as error:
        raise DataError(f"{os.fspath(params_path)}: {error}") from error
    description = network_description(
        multibox_network(network), len(names), data_shape, mxnet_network_options()
    )
    return make_checkpoint(
        model.state_dict(),
        names,
        description,
        model.detection.to_dict(),
        imported_from={"library": "mxnet example/ssd", "network": network, "params": os.fspath(params_path)},
    )


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _state_dict(
    model: SSD, arg: Mapping[str, np.ndarray], aux: Mapping[str, np.ndarray]
) -> dict[str, torch.Tensor]:
    """``model``'s state dict filled from ``arg`` and ``aux`` (every name used once, shapes checked), or a
    one-line DataError naming what does not fit."""
    ours = model.state_dict()
    wanted = mxnet_names(model)
    given = {**arg, **{f"aux:{n}": v for n, v in aux.items()}}
    _check_classes(model, arg)
    missing = sorted(set(wanted) - set(given))
    unexpected = sorted(set(given) - set(wanted))
    present = [(name, key) for name, key in wanted.items() if name in given]
    wrong = [
        f"{name} {tuple(np.shape(given[name]))} (expected {tuple(ours[key].shape)})"
        for name, key in present
        if tuple(np.shape(given[name])) != tuple(ours[key].shape)
    ]
    bad_type = [
        f"{name} ({np.asarray(given[name]).dtype})"
        for name, _ in present
        if not np.issubdtype(np.asarray(given[name]).dtype, np.floating)
    ]
    problems = [
        f"{what} {_listed(names)}"
        for what, names in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", wrong),
            ("not floating point", bad_type),
        )
        if names
    ]
    if problems:
        raise DataError(
            f"the parameters do not fit the original's {model.num_classes}-class network: {'; '.join(problems)}"
        )
    state = dict(ours)  # num_batches_tracked stays
    for name, key in present:
        state[key] = torch.from_numpy(np.array(given[name], dtype=np.float32, copy=True))
    return state


def _check_classes(model: SSD, arg: Mapping[str, np.ndarray]) -> None:
    """A file of another class count: one line saying so (rather than a shape error per head)."""
    name = f"{model.layer_names[0]}_cls_pred_conv_weight"
    if name not in arg or np.ndim(arg[name]) != 4:
        return
    outputs, anchors = int(np.shape(arg[name])[0]), model.num_anchors[0]
    if outputs != anchors * (model.num_classes + 1) and outputs % anchors == 0 and outputs > anchors:
        raise DataError(
            f"the parameters are of a {outputs // anchors - 1}-class network ({name} has {outputs} outputs "
            f"for {anchors} anchors), not {model.num_classes} classes: give that many class names"
        )
