"""Write the whole-network goldens of ``tests/model/test_import_mxnet.py`` into tests/fixtures/mxnet_network/.

Runs inside ``benchmarks/.venv-mxnet`` (see ``setup_mxnet.sh``; MXNet 1.9.1, numpy 1.23.5):

    benchmarks/.venv-mxnet/bin/python benchmarks/make_mxnet_network_golden.py

For ``vgg16_reduced`` at data_shape 300, ``resnet50`` and ``inceptionv3`` at 512, with 20 classes, it builds
the original example's inference symbol (apache/mxnet 1.9.1 ``example/ssd``: ``symbol/vgg16_reduced.py``,
``symbol/resnet.py``, ``symbol/inceptionv3.py``, ``multi_layer_feature`` and ``multibox_layer`` of
``symbol/common.py``, ``get_symbol`` of ``symbol/symbol_builder.py``, the settings of ``symbol_factory.py``;
written here after the spec, with the original's layer names), draws every parameter and auxiliary state
from a seeded numpy generator (:func:`draw_parameters`: the test repeats it without MXNet), saves them with
``mx.model.save_checkpoint``, loads that checkpoint back and runs it on three BCCD photos decoded and resized
by MXNet itself (``mx.image.imread``, ``mx.image.imresize`` bilinear, as the original's ``DetIter``). The
100 MB parameter files are not kept: their sha256 is, so the test can prove it rebuilds the same bytes.

Stored per case: ``CASE.npz`` (no object arrays) and ``CASE-symbol.json``; per data shape the input pixels,
``pixels_SIZE.npz``; README.md describes every field.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import tempfile
from functools import partial
from pathlib import Path

import mxnet as mx
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "fixtures" / "mxnet_network"
IMAGES = ROOT / "tests" / "fixtures" / "bccd_subset" / "JPEGImages"
PHOTOS = ("BloodImage_00004.jpg", "BloodImage_00093.jpg", "BloodImage_00208.jpg")
SEED = 20261201
NUM_CLASSES = 20
MEAN_PIXELS = (123.0, 117.0, 104.0)  # the original's --mean-r/g/b; no division by a std
# head outputs the drawing aims at (RMS over the three photos): box offsets of about one unit, class logits
# of spread 1.5 (the top-400 scores of an image spread over about 0.5 .. 0.97, not saturated)
LOC_RMS, CLS_RMS = 1.0, 1.5
# deploy.py's symbol (--nms 0.5, force_suppress on, --topk 400; the operator's threshold 0.01 and clip), and
# evaluate.py's (--nms 0.45, class-wise NMS, the builder's nms_topk 400)
DEPLOY = {"nms_threshold": 0.5, "force_suppress": True, "nms_topk": 400}
EVALUATE = {"nms_threshold": 0.45, "force_suppress": False, "nms_topk": 400}
ROWS_KEPT = 400  # rows stored per image: the sorted top-k (rows past it hold leftovers with id -1)

# symbol_factory.get_config("vgg16_reduced", 300 / 512, 20)
_R3, _R5 = [1, 2, 0.5], [1, 2, 0.5, 3, 1.0 / 3]
CONFIGS = {
    300: {
        "from_layers": ["relu4_3", "relu7", "", "", "", ""],
        "num_filters": [512, -1, 512, 256, 256, 256],
        "strides": [-1, -1, 2, 2, 1, 1],
        "pads": [-1, -1, 1, 1, 0, 0],
        "sizes": [[0.1, 0.141], [0.2, 0.272], [0.37, 0.447], [0.54, 0.619], [0.71, 0.79], [0.88, 0.961]],
        "ratios": [_R3, _R5, _R5, _R5, _R3, _R3],
        "normalizations": [20, -1, -1, -1, -1, -1],
        "steps": [x / 300.0 for x in [8, 16, 32, 64, 100, 300]],
    },
    512: {
        "from_layers": ["relu4_3", "relu7", "", "", "", "", ""],
        "num_filters": [512, -1, 512, 256, 256, 256, 256],
        "strides": [-1, -1, 2, 2, 2, 2, 1],
        "pads": [-1, -1, 1, 1, 1, 1, 1],
        "sizes": [
            [0.07, 0.1025],
            [0.15, 0.2121],
            [0.3, 0.3674],
            [0.45, 0.5196],
            [0.6, 0.6708],
            [0.75, 0.8216],
            [0.9, 0.9721],
        ],
        "ratios": [_R3, _R5, _R5, _R5, _R5, _R3, _R3],
        "normalizations": [20, -1, -1, -1, -1, -1, -1],
        "steps": [x / 512.0 for x in [8, 16, 32, 64, 128, 256, 512]],
    },
}
# symbol_factory.get_config("resnet50", 512, 20): network "resnet", num_layers 50, automatic steps
RESNET50 = {
    "from_layers": ["_plus12", "_plus15", "", "", "", ""],
    "num_filters": [-1, -1, 512, 256, 256, 128],
    "strides": [-1, -1, 2, 2, 2, 2],
    "pads": [-1, -1, 1, 1, 1, 1],
    "sizes": CONFIGS[300]["sizes"],
    "ratios": CONFIGS[300]["ratios"],
    "normalizations": [-1] * 6,
    "steps": [],
}


RESNET101 = dict(RESNET50, from_layers=["_plus29", "_plus32", "", "", "", ""])
# symbol_factory.get_config("inceptionv3", 512, 20): the same extras, sizes and ratios
INCEPTIONV3 = dict(
    RESNET50, from_layers=["ch_concat_mixed_7_chconcat", "ch_concat_mixed_10_chconcat", "", "", "", ""]
)


# ---------------------------------------------------------------------------------------------- the symbol
def vgg16_reduced(data):
    """The base network (symbol/vgg16_reduced.py without its unused classification tail)."""
    x = data
    for block, convs, filters in ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)):
        for i in range(1, convs + 1):
            x = mx.sym.Convolution(x, kernel=(3, 3), pad=(1, 1), num_filter=filters, name=f"conv{block}_{i}")
            x = mx.sym.Activation(x, act_type="relu", name=f"relu{block}_{i}")
        if block == 5:
            x = mx.sym.Pooling(x, pool_type="max", kernel=(3, 3), stride=(1, 1), pad=(1, 1), name="pool5")
        else:
            convention = "full" if block == 3 else "valid"
            x = mx.sym.Pooling(
                x,
                pool_type="max",
                kernel=(2, 2),
                stride=(2, 2),
                pooling_convention=convention,
                name=f"pool{block}",
            )
    x = mx.sym.Convolution(x, kernel=(3, 3), pad=(6, 6), dilate=(6, 6), num_filter=1024, name="fc6")
    x = mx.sym.Activation(x, act_type="relu", name="relu6")
    x = mx.sym.Convolution(x, kernel=(1, 1), pad=(0, 0), num_filter=1024, name="fc7")
    return mx.sym.Activation(x, act_type="relu", name="relu7")


def residual_unit(x, filters: int, stride: int, project: bool, name: str):
    """symbol/resnet.py's bottleneck unit: BN-ReLU-1x1 (F/4), BN-ReLU-3x3 (F/4, stride), BN-ReLU-1x1 (F),
    plus the input or a 1x1 projection ``_sc`` of the first BN-ReLU; no bias, BN eps 2e-5, learned gamma."""

    def bn_relu(y, k):
        y = mx.sym.BatchNorm(y, fix_gamma=False, eps=2e-5, momentum=0.9, name=f"{name}_bn{k}")
        return mx.sym.Activation(y, act_type="relu", name=f"{name}_relu{k}")

    act1 = bn_relu(x, 1)
    y = mx.sym.Convolution(act1, num_filter=filters // 4, kernel=(1, 1), no_bias=True, name=f"{name}_conv1")
    y = mx.sym.Convolution(
        bn_relu(y, 2),
        num_filter=filters // 4,
        kernel=(3, 3),
        stride=(stride, stride),
        pad=(1, 1),
        no_bias=True,
        name=f"{name}_conv2",
    )
    y = mx.sym.Convolution(
        bn_relu(y, 3), num_filter=filters, kernel=(1, 1), no_bias=True, name=f"{name}_conv3"
    )
    if project:
        shortcut = mx.sym.Convolution(
            act1, num_filter=filters, kernel=(1, 1), stride=(stride, stride), no_bias=True, name=f"{name}_sc"
        )
    else:
        shortcut = x
    return y + shortcut  # MXNet names the sums _plus0, _plus1, ...


def resnet(data, units=(3, 4, 6, 3)):
    """symbol/resnet.py for image_shape 3,224,224 (50 layers: units 3, 4, 6, 3; 101: 3, 4, 23, 3), up to the
    last unit (pre-activation v2)."""
    x = mx.sym.identity(data, name="id")
    x = mx.sym.BatchNorm(x, fix_gamma=True, eps=2e-5, momentum=0.9, name="bn_data")
    x = mx.sym.Convolution(
        x, num_filter=64, kernel=(7, 7), stride=(2, 2), pad=(3, 3), no_bias=True, name="conv0"
    )
    x = mx.sym.BatchNorm(x, fix_gamma=False, eps=2e-5, momentum=0.9, name="bn0")
    x = mx.sym.Activation(x, act_type="relu", name="relu0")
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pad=(1, 1), pool_type="max")
    for stage, (count, filters) in enumerate(zip(units, (256, 512, 1024, 2048), strict=True), start=1):
        for unit in range(1, count + 1):
            stride = 2 if unit == 1 and stage > 1 else 1
            x = residual_unit(x, filters, stride, unit == 1, f"stage{stage}_unit{unit}")
    return x


def conv_bn_relu(x, filters: int, name: str, kernel=(1, 1), stride=(1, 1), pad=(0, 0)):
    """symbol/inceptionv3.py's ``Conv``: ``{name}_conv2d`` (no bias), ``{name}_batchnorm`` (fix_gamma, the
    default eps 1e-3), ``{name}_relu``."""
    x = mx.sym.Convolution(
        x, num_filter=filters, kernel=kernel, stride=stride, pad=pad, no_bias=True, name=f"{name}_conv2d"
    )
    x = mx.sym.BatchNorm(x, fix_gamma=True, name=f"{name}_batchnorm")
    return mx.sym.Activation(x, act_type="relu", name=f"{name}_relu")


def pool(x, kind: str, stride: int, pad: int, name: str):
    return mx.sym.Pooling(
        x,
        kernel=(3, 3),
        stride=(stride, stride),
        pad=(pad, pad),
        pool_type=kind,
        name=f"{kind}_pool_{name}_pool",
    )


def block_a(x, proj: int, name: str):
    """Inception7A (1x1 64, 5x5 48 -> 64, double 3x3 64 -> 96 -> 96, avg pool -> proj)."""
    towers = [
        conv_bn_relu(x, 64, f"{name}_conv"),
        conv_bn_relu(
            conv_bn_relu(x, 48, f"{name}_tower_conv"), 64, f"{name}_tower_conv_1", (5, 5), pad=(2, 2)
        ),
    ]
    y = conv_bn_relu(x, 64, f"{name}_tower_1_conv")
    y = conv_bn_relu(y, 96, f"{name}_tower_1_conv_1", (3, 3), pad=(1, 1))
    towers.append(conv_bn_relu(y, 96, f"{name}_tower_1_conv_2", (3, 3), pad=(1, 1)))
    towers.append(conv_bn_relu(pool(x, "avg", 1, 1, name), proj, f"{name}_tower_2_conv"))
    return mx.sym.Concat(*towers, name=f"ch_concat_{name}_chconcat")


def block_b(x, name: str):
    """Inception7B (3x3/2 384, double 3x3 64 -> 96 -> 96/2, max pool /2)."""
    y = conv_bn_relu(x, 64, f"{name}_tower_conv")
    y = conv_bn_relu(y, 96, f"{name}_tower_conv_1", (3, 3), pad=(1, 1))
    towers = [
        conv_bn_relu(x, 384, f"{name}_conv", (3, 3), (2, 2)),
        conv_bn_relu(y, 96, f"{name}_tower_conv_2", (3, 3), (2, 2)),
        mx.sym.Pooling(
            x, kernel=(3, 3), stride=(2, 2), pad=(0, 0), pool_type="max", name=f"max_pool_{name}_pool"
        ),
    ]
    return mx.sym.Concat(*towers, name=f"ch_concat_{name}_chconcat")


def block_c(x, mid: int, name: str):
    """Inception7C (1x1 192, 1x7 / 7x1 of ``mid`` -> 192, the four-step 7x7 of ``mid`` -> 192, avg pool -> 192)."""
    y = conv_bn_relu(x, mid, f"{name}_tower_conv")
    y = conv_bn_relu(y, mid, f"{name}_tower_conv_1", (1, 7), pad=(0, 3))
    towers = [
        conv_bn_relu(x, 192, f"{name}_conv"),
        conv_bn_relu(y, 192, f"{name}_tower_conv_2", (7, 1), pad=(3, 0)),
    ]
    y = conv_bn_relu(x, mid, f"{name}_tower_1_conv")
    for k, (kernel, pad) in enumerate(
        (((7, 1), (3, 0)), ((1, 7), (0, 3)), ((7, 1), (3, 0)), ((1, 7), (0, 3))), 1
    ):
        y = conv_bn_relu(y, 192 if k == 4 else mid, f"{name}_tower_1_conv_{k}", kernel, pad=pad)
    towers.append(y)
    towers.append(conv_bn_relu(pool(x, "avg", 1, 1, name), 192, f"{name}_tower_2_conv"))
    return mx.sym.Concat(*towers, name=f"ch_concat_{name}_chconcat")


def block_d(x, name: str):
    """Inception7D (1x1 192 -> 3x3/2 320, 1x1 192 -> 1x7 -> 7x1 -> 3x3/2 192, max pool /2)."""
    a = conv_bn_relu(conv_bn_relu(x, 192, f"{name}_tower_conv"), 320, f"{name}_tower_conv_1", (3, 3), (2, 2))
    b = conv_bn_relu(x, 192, f"{name}_tower_1_conv")
    b = conv_bn_relu(b, 192, f"{name}_tower_1_conv_1", (1, 7), pad=(0, 3))
    b = conv_bn_relu(b, 192, f"{name}_tower_1_conv_2", (7, 1), pad=(3, 0))
    b = conv_bn_relu(b, 192, f"{name}_tower_1_conv_3", (3, 3), (2, 2))
    return mx.sym.Concat(a, b, pool(x, "max", 2, 0, name), name=f"ch_concat_{name}_chconcat")


def block_e(x, kind: str, name: str):
    """Inception7E (1x1 320, 1x1 384 -> [1x3, 3x1] 384, 1x1 448 -> 3x3 384 -> [1x3, 3x1] 384, ``kind`` pool -> 192)."""
    a = conv_bn_relu(x, 384, f"{name}_tower_conv")
    b = conv_bn_relu(
        conv_bn_relu(x, 448, f"{name}_tower_1_conv"), 384, f"{name}_tower_1_conv_1", (3, 3), pad=(1, 1)
    )
    towers = [
        conv_bn_relu(x, 320, f"{name}_conv"),
        conv_bn_relu(a, 384, f"{name}_tower_mixed_conv", (1, 3), pad=(0, 1)),
        conv_bn_relu(a, 384, f"{name}_tower_mixed_conv_1", (3, 1), pad=(1, 0)),
        conv_bn_relu(b, 384, f"{name}_tower_1_mixed_conv", (1, 3), pad=(0, 1)),
        conv_bn_relu(b, 384, f"{name}_tower_1_mixed_conv_1", (3, 1), pad=(1, 0)),
        conv_bn_relu(pool(x, kind, 1, 1, name), 192, f"{name}_tower_2_conv"),
    ]
    return mx.sym.Concat(*towers, name=f"ch_concat_{name}_chconcat")


def inceptionv3(data):
    """symbol/inceptionv3.py up to mixed_10 (the classification tail unused)."""
    x = conv_bn_relu(data, 32, "conv", (3, 3), (2, 2))
    x = conv_bn_relu(x, 32, "conv_1", (3, 3))
    x = conv_bn_relu(x, 64, "conv_2", (3, 3), pad=(1, 1))
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool")
    x = conv_bn_relu(x, 80, "conv_3")
    x = conv_bn_relu(x, 192, "conv_4", (3, 3))
    x = mx.sym.Pooling(x, kernel=(3, 3), stride=(2, 2), pool_type="max", name="pool1")
    x = block_a(x, 32, "mixed")
    x = block_a(x, 64, "mixed_1")
    x = block_a(x, 64, "mixed_2")
    x = block_b(x, "mixed_3")
    for k, mid in enumerate((128, 160, 160, 192), 4):
        x = block_c(x, mid, f"mixed_{k}")
    x = block_d(x, "mixed_8")
    x = block_e(x, "avg", "mixed_9")
    return block_e(x, "max", "mixed_10")


def conv_relu(x, name, filters, kernel, pad, stride):
    """common.conv_act_layer: ``{name}_conv`` (bias variable ``{name}_conv_bias``) + ``{name}_relu``."""
    bias = mx.sym.Variable(f"{name}_conv_bias", init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"})
    x = mx.sym.Convolution(
        x, bias=bias, kernel=kernel, pad=pad, stride=stride, num_filter=filters, name=f"{name}_conv"
    )
    return mx.sym.Activation(x, act_type="relu", name=f"{name}_relu")


def feature_layers(body, config: dict):
    """common.multi_layer_feature with min_filter 128."""
    internals = body.get_internals()
    layers = []
    for k, (name, filters, stride, pad) in enumerate(
        zip(config["from_layers"], config["num_filters"], config["strides"], config["pads"], strict=True)
    ):
        if name:
            layers.append(internals[name + "_output"])
            continue
        x = conv_relu(layers[-1], f"multi_feat_{k}_conv_1x1", max(128, filters // 2), (1, 1), (0, 0), (1, 1))
        x = conv_relu(x, f"multi_feat_{k}_conv_3x3", filters, (3, 3), (pad, pad), (stride, stride))
        layers.append(x)
    return layers


def head(x, name, filters):
    bias = mx.sym.Variable(f"{name}_bias", init=mx.init.Constant(0.0), attr={"__lr_mult__": "2.0"})
    x = mx.sym.Convolution(
        x, bias=bias, kernel=(3, 3), stride=(1, 1), pad=(1, 1), num_filter=filters, name=name
    )
    return mx.sym.Flatten(mx.sym.transpose(x, axes=(0, 2, 3, 1)))


def multibox_layer(layers, config: dict):
    """common.multibox_layer (clip False, no intermediate layer): loc, cls (N, C+1, A), anchors (1, A, 4)."""
    locs, clss, anchors = [], [], []
    norms, steps = config["normalizations"], config["steps"]
    num_channels = [f for f, norm in zip(config["num_filters"], norms, strict=True) if norm > 0]
    for k, x in enumerate(layers):
        name = x.name
        if norms[k] > 0:
            x = mx.sym.L2Normalization(x, mode="channel", name=f"{name}_norm")
            scale = mx.sym.Variable(
                f"{name}_scale",
                shape=(1, num_channels.pop(0), 1, 1),
                init=mx.init.Constant(norms[k]),
            )
            x = mx.sym.broadcast_mul(lhs=scale, rhs=x)
        size, ratio = config["sizes"][k], config["ratios"][k]
        num_anchors = len(size) - 1 + len(ratio)
        locs.append(head(x, f"{name}_loc_pred_conv", 4 * num_anchors))
        clss.append(head(x, f"{name}_cls_pred_conv", num_anchors * (NUM_CLASSES + 1)))
        prior = mx.sym.contrib.MultiBoxPrior(
            x,
            sizes="(" + ",".join(str(s) for s in size) + ")",
            ratios="(" + ",".join(str(r) for r in ratio) + ")",
            clip=False,
            steps=(steps[k], steps[k]) if steps else "(-1.0, -1.0)",
            name=f"{name}_anchors",
        )
        anchors.append(mx.sym.Flatten(prior))
    loc_preds = mx.sym.Concat(*locs, num_args=len(locs), dim=1, name="multibox_loc_pred")
    cls_preds = mx.sym.Concat(*clss, num_args=len(clss), dim=1)
    cls_preds = mx.sym.Reshape(cls_preds, shape=(0, -1, NUM_CLASSES + 1))
    cls_preds = mx.sym.transpose(cls_preds, axes=(0, 2, 1), name="multibox_cls_pred")
    anchor_boxes = mx.sym.Concat(*anchors, num_args=len(anchors), dim=1)
    anchor_boxes = mx.sym.Reshape(anchor_boxes, shape=(0, -1, 4), name="multibox_anchors")
    return loc_preds, cls_preds, anchor_boxes


# case -> (base network, get_config's settings, data shape)
CASES = {
    "vgg16_reduced_300": (vgg16_reduced, CONFIGS[300], 300),
    "resnet50_512": (resnet, RESNET50, 512),
    "resnet101_512": (partial(resnet, units=(3, 4, 23, 3)), RESNET101, 512),  # names and shapes only
    "inceptionv3_512": (inceptionv3, INCEPTIONV3, 512),
}


def get_symbol(
    case: str, nms_threshold: float, force_suppress: bool, nms_topk: int, config: dict | None = None
):
    """symbol_builder.get_symbol: softmax over the classes, then MultiBoxDetection."""
    base, default_config, _ = CASES[case]
    config = config or default_config
    with mx.name.NameManager():  # a fresh counter: the residual sums are _plus0, _plus1, ... as in train.py
        body = base(mx.sym.Variable("data"))
        loc_preds, cls_preds, anchor_boxes = multibox_layer(feature_layers(body, config), config)
        cls_prob = mx.sym.softmax(cls_preds, axis=1, name="cls_prob")
        return mx.sym.contrib.MultiBoxDetection(
            cls_prob,
            loc_preds,
            anchor_boxes,
            name="detection",
            nms_threshold=nms_threshold,
            force_suppress=force_suppress,
            variances=(0.1, 0.1, 0.2, 0.2),
            nms_topk=nms_topk,
        )


# ---------------------------------------------------------------------------------------------- parameters
def draw_parameters(
    specs: list[tuple[str, tuple[int, ...], float, float]], seed: int
) -> dict[str, np.ndarray]:
    """``name -> float32 array``: for each ``(name, shape, mean, std)`` in order, the next
    ``standard_normal(shape)`` (float64) of ``np.random.default_rng(seed)``, then ``(mean + std * z)`` cast to
    float32. The test module repeats exactly this (PCG64 streams and ``standard_normal`` are the same in
    numpy 1.23 and 2.x). Names of auxiliary states start with ``aux:``."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape, mean, std in specs:
        z = rng.standard_normal(tuple(shape))
        out[name] = (mean + std * z).astype(np.float32)
    return out


def base_spec(name: str, shape: tuple[int, ...]) -> tuple[str, tuple[int, ...], float, float]:
    """Weights He-normal (std sqrt(2 / fan_in)), a residual unit's last conv 0.3 of that (so the sums grow
    slowly), heads sqrt(1 / fan_in) before calibration; biases and BN betas std 0.1; BN gammas 1 +- 0.1
    (``bn_data``'s, which MXNet ignores, 1 +- 0.5); moving means 0 +- 0.1, moving variances 1 +- 0.1; the
    L2-norm scale 20 +- 2."""
    if name.endswith("_scale"):
        return name, shape, 20.0, 2.0
    if name.endswith(("_bias", "_beta", "_moving_mean")):
        return name, shape, 0.0, 0.1
    if name.endswith(("_gamma", "_moving_var")):
        return name, shape, 1.0, 0.5 if name == "bn_data_gamma" else 0.1
    fan_in = int(np.prod(shape[1:]))
    gain = 1.0 if "_pred_conv" in name else 2.0
    scale = 0.3 if name.endswith("_conv3_weight") else 1.0
    return name, shape, 0.0, float(scale * np.sqrt(gain / fan_in))


def head_outputs(case: str, arg: dict[str, np.ndarray], data: np.ndarray) -> dict[str, float]:
    """RMS of every prediction conv's output on ``data`` (for the calibration)."""
    body = get_symbol(case, **DEPLOY).get_internals()
    names = [n for n in body.list_outputs() if n.endswith("_pred_conv_output")]
    outputs = run(mx.sym.Group([body[n] for n in names]), arg, data)
    return {
        n.removesuffix("_output"): float(np.sqrt(np.mean(o.astype(np.float64) ** 2)))
        for n, o in zip(names, outputs, strict=True)
    }


def calibrated_specs(case: str, shapes: dict[str, tuple[int, ...]], data: np.ndarray, seed: int):
    """Sorted ``arg`` names, then sorted ``aux:`` names, with each head's weight and bias std rescaled so its
    outputs reach LOC_RMS / CLS_RMS (same draws, new std)."""
    specs = [
        base_spec(name, shapes[name]) for name in sorted(shapes, key=lambda n: (n.startswith("aux:"), n))
    ]
    rms = head_outputs(case, draw_parameters(specs, seed), data)
    final = []
    for name, shape, mean, std in specs:
        layer = name.removesuffix("_weight").removesuffix("_bias")
        if layer in rms:
            target = LOC_RMS if layer.endswith("_loc_pred_conv") else CLS_RMS
            std = float(np.float32(std * target / rms[layer]))  # a float32-exact value, stored as is
        final.append((name, shape, mean, std))
    return final


# ---------------------------------------------------------------------------------------------- running
def run(sym, params: dict[str, np.ndarray], data: np.ndarray) -> list[np.ndarray]:
    """Forward ``sym`` (inference) on ``data`` with ``params`` (aux states as ``aux:NAME``) on the CPU."""
    args = {n: mx.nd.array(params[n]) for n in sym.list_arguments() if n != "data"}
    aux = {n: mx.nd.array(params["aux:" + n]) for n in sym.list_auxiliary_states()}
    executor = sym.bind(mx.cpu(), {"data": mx.nd.array(data), **args}, aux_states=aux, grad_req="null")
    return [o.asnumpy() for o in executor.forward(is_train=False)]


def photos(size: int) -> np.ndarray:
    """(3, size, size, 3) uint8 RGB: MXNet's decoder and bilinear resize (interp=1), as DetIter."""
    return np.stack(
        [
            mx.image.imresize(mx.image.imread(str(IMAGES / name)), size, size, interp=1).asnumpy()
            for name in PHOTOS
        ]
    )


def network_input(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC RGB -> float32 NCHW minus the mean pixels (the original's iterator)."""
    mean = np.array(MEAN_PIXELS, np.float32)[None, :, None, None]
    return pixels.transpose(0, 3, 1, 2).astype(np.float32) - mean


def smallest_gap(detections: np.ndarray) -> float:
    """The smallest score difference between adjacent kept rows of any image of ``(N, A, 6)`` detections."""
    gaps = [np.min(-np.diff(d[d[:, 0] >= 0, 1]), initial=np.inf) for d in detections]
    return float(min(gaps))


def golden(case: str, seed: int, data: np.ndarray) -> dict:
    """Draw the parameters of ``seed``, save them with save_checkpoint, load that checkpoint, run it."""
    deploy = get_symbol(case, **DEPLOY)
    arg_shapes, _, aux_shapes = deploy.infer_shape(data=data.shape)
    shapes = {n: tuple(s) for n, s in zip(deploy.list_arguments(), arg_shapes, strict=True) if n != "data"}
    shapes.update(
        {"aux:" + n: tuple(s) for n, s in zip(deploy.list_auxiliary_states(), aux_shapes, strict=True)}
    )
    specs = calibrated_specs(case, shapes, data, seed)
    params = draw_parameters(specs, seed)
    arg = {k: mx.nd.array(v) for k, v in params.items() if not k.startswith("aux:")}
    aux = {k.removeprefix("aux:"): mx.nd.array(v) for k, v in params.items() if k.startswith("aux:")}
    with tempfile.TemporaryDirectory() as tmp:
        prefix = str(Path(tmp) / f"deploy_ssd_{case}")
        mx.model.save_checkpoint(prefix, 0, deploy, arg, aux)
        params_file = Path(prefix + "-0000.params")
        digest = hashlib.sha256(params_file.read_bytes()).hexdigest()
        size = params_file.stat().st_size
        sym, arg_back, aux_back = mx.model.load_checkpoint(prefix, 0)
    loaded = {
        **{k: v.asnumpy() for k, v in arg_back.items()},
        **{"aux:" + k: v.asnumpy() for k, v in aux_back.items()},
    }
    assert list(loaded) == list(params)
    for k, v in params.items():
        np.testing.assert_array_equal(loaded[k], v)

    # the loaded deploy symbol, with the head outputs beside the detections
    internals = sym.get_internals()
    taps = [
        "multibox_loc_pred_output",
        "multibox_cls_pred_output",
        "cls_prob_output",
        "multibox_anchors_output",
    ]
    group = mx.sym.Group([sym, *(internals[t] for t in taps)])
    detection, loc_preds, cls_preds, cls_prob, anchors = run(group, loaded, data)
    evaluate = mx.nd.contrib.MultiBoxDetection(
        mx.nd.array(cls_prob),
        mx.nd.array(loc_preds),
        mx.nd.array(anchors),
        variances=(0.1, 0.1, 0.2, 0.2),
        **EVALUATE,
    ).asnumpy()
    return {
        "sym": sym,
        "specs": specs,
        "digest": digest,
        "size": size,
        "detection": detection,
        "evaluate": evaluate,
        "loc_preds": loc_preds,
        "cls_preds": cls_preds,
        "cls_prob": cls_prob,
        "anchors": anchors,
    }


def write_case(out: Path, case: str, pixels: np.ndarray, g: dict, extra: dict) -> str:
    specs, loc_preds, cls_preds, cls_prob = g["specs"], g["loc_preds"], g["cls_preds"], g["cls_prob"]
    num_anchors = g["anchors"].shape[1]
    sample = np.linspace(0, num_anchors - 1, 64).astype(np.int64)  # every layer, first and last anchor
    (out / f"{case}-symbol.json").write_text(g["sym"].tojson())
    np.savez_compressed(
        out / f"{case}.npz",
        data_shape=np.array(pixels.shape[1]),
        param_names=np.array([s[0] for s in specs]),
        param_shapes=np.array(json.dumps([list(s[1]) for s in specs])),
        param_means=np.array([s[2] for s in specs]),
        param_stds=np.array([s[3] for s in specs]),
        seed=np.array(SEED),
        params_sha256=np.array(g["digest"]),
        params_bytes=np.array(g["size"]),
        anchors=g["anchors"][0],
        sample_anchors=sample,
        sample_loc_preds=loc_preds.reshape(loc_preds.shape[0], -1, 4)[:, sample],
        sample_cls_preds=cls_preds[:, :, sample],
        sample_cls_prob=cls_prob[:, :, sample],
        detection_deploy=g["detection"][:, :ROWS_KEPT],
        detection_evaluate=g["evaluate"][:, :ROWS_KEPT],
        settings=np.array(
            json.dumps({"deploy": DEPLOY, "evaluate": EVALUATE, "threshold": 0.01, "clip": True})
        ),
        versions=np.array(json.dumps({"mxnet": mx.__version__, "numpy": np.__version__})),
        **extra,
    )
    kept = [int((d[:, 0] >= 0).sum()) for d in g["detection"]]
    kept_evaluate = [int((d[:, 0] >= 0).sum()) for d in g["evaluate"]]
    gap = min(smallest_gap(g["detection"]), smallest_gap(g["evaluate"]))
    return (
        f"{case}: {len(specs)} arrays ({sum(int(np.prod(s[1])) for s in specs)} values, {g['size']} bytes, "
        f"sha256 {g['digest'][:12]}), kept per image {kept} (evaluate settings {kept_evaluate}), smallest score "
        f"gap between kept rows {gap:.3g}"
    )


def names_and_shapes(sym, size: int) -> tuple[list, int]:
    """``[name, shape]`` of every argument and ``aux:`` state of ``sym`` at ``size``, and its anchor count."""
    arg_shapes, out_shapes, aux_shapes = sym.infer_shape(data=(1, 3, size, size))
    params = [[n, list(s)] for n, s in zip(sym.list_arguments(), arg_shapes, strict=True) if n != "data"]
    params += [["aux:" + n, list(s)] for n, s in zip(sym.list_auxiliary_states(), aux_shapes, strict=True)]
    return params, int(out_shapes[0][1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT)
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    print(f"mxnet {mx.__version__} numpy {np.__version__}, seed {SEED}, writing {out}")
    run_cases = [case for case in CASES if case != "resnet101_512"]
    for size in sorted({size for _, _, size in CASES.values()}):
        np.savez_compressed(out / f"pixels_{size}.npz", pixels=photos(size), photos=np.array(PHOTOS))
    for case in run_cases:
        size = CASES[case][2]
        with np.load(out / f"pixels_{size}.npz") as z:
            pixels = z["pixels"]
        g = golden(case, SEED, network_input(pixels))
        extra = {}
        if case == "vgg16_reduced_300":  # the SSD512 preset's names and shapes (nothing is run at 512)
            params, anchors = names_and_shapes(get_symbol(case, **DEPLOY, config=CONFIGS[512]), 512)
            extra = {"params_512": np.array(json.dumps(params)), "anchors_512": np.array(anchors)}
        if case == "resnet50_512":  # ResNet-101's names and shapes (nothing is run)
            params, anchors = names_and_shapes(get_symbol("resnet101_512", **DEPLOY), 512)
            extra = {"params_resnet101": np.array(json.dumps(params)), "anchors_resnet101": np.array(anchors)}
        print(write_case(out, case, pixels, g, extra), flush=True)


if __name__ == "__main__":
    main()
