"""The original example's Inception-v3 (``symbol/inceptionv3.py``, MXNet's model-zoo network) on torchvision's
modules: the same layers, channel counts and concatenation orders as :class:`InceptionV3`, with MXNet's two
differences: every BatchNorm holds its scale at 1 (``fix_gamma=True``), and ``mixed_10`` (``Mixed_7c``) takes a
max, not an average, in its pool branch. :data:`MXNET_NAMES` gives each convolution / BatchNorm its MXNet name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception

from multibox.model.backbones.base import CAFFE_MEAN, PIXEL_STD
from multibox.model.backbones.inception import InceptionV3
from multibox.model.backbones.resnet_v2 import FixedGammaBatchNorm2d

# torchvision's stem -> MXNet's
_STEM = {
    "Conv2d_1a_3x3": "conv",
    "Conv2d_2a_3x3": "conv_1",
    "Conv2d_2b_3x3": "conv_2",
    "Conv2d_3b_1x1": "conv_3",
    "Conv2d_4a_3x3": "conv_4",
}
# torchvision's branch -> MXNet's tower, per block type (Inception7A .. 7E of the MXNet symbol)
_TOWERS = {
    inception.InceptionA: {
        "branch1x1": "conv",
        "branch5x5_1": "tower_conv",
        "branch5x5_2": "tower_conv_1",
        "branch3x3dbl_1": "tower_1_conv",
        "branch3x3dbl_2": "tower_1_conv_1",
        "branch3x3dbl_3": "tower_1_conv_2",
        "branch_pool": "tower_2_conv",
    },
    inception.InceptionB: {
        "branch3x3": "conv",
        "branch3x3dbl_1": "tower_conv",
        "branch3x3dbl_2": "tower_conv_1",
        "branch3x3dbl_3": "tower_conv_2",
    },
    inception.InceptionC: {
        "branch1x1": "conv",
        "branch7x7_1": "tower_conv",
        "branch7x7_2": "tower_conv_1",
        "branch7x7_3": "tower_conv_2",
        "branch7x7dbl_1": "tower_1_conv",
        "branch7x7dbl_2": "tower_1_conv_1",
        "branch7x7dbl_3": "tower_1_conv_2",
        "branch7x7dbl_4": "tower_1_conv_3",
        "branch7x7dbl_5": "tower_1_conv_4",
        "branch_pool": "tower_2_conv",
    },
    inception.InceptionD: {
        "branch3x3_1": "tower_conv",
        "branch3x3_2": "tower_conv_1",
        "branch7x7x3_1": "tower_1_conv",
        "branch7x7x3_2": "tower_1_conv_1",
        "branch7x7x3_3": "tower_1_conv_2",
        "branch7x7x3_4": "tower_1_conv_3",
    },
    inception.InceptionE: {
        "branch1x1": "conv",
        "branch3x3_1": "tower_conv",
        "branch3x3_2a": "tower_mixed_conv",
        "branch3x3_2b": "tower_mixed_conv_1",
        "branch3x3dbl_1": "tower_1_conv",
        "branch3x3dbl_2": "tower_1_conv_1",
        "branch3x3dbl_3a": "tower_1_mixed_conv",
        "branch3x3dbl_3b": "tower_1_mixed_conv_1",
        "branch_pool": "tower_2_conv",
    },
}


class MaxPoolInceptionE(inception.InceptionE):
    """``Inception7E`` with ``pool="max"`` (MXNet's ``mixed_10``): torchvision's block, max-pooled pool branch."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        mid = self.branch3x3_1(x)
        wide = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        return [
            self.branch1x1(x),
            torch.cat([self.branch3x3_2a(mid), self.branch3x3_2b(mid)], 1),
            torch.cat([self.branch3x3dbl_3a(wide), self.branch3x3dbl_3b(wide)], 1),
            self.branch_pool(F.max_pool2d(x, kernel_size=3, stride=1, padding=1)),
        ]


def _fix_gamma(module: nn.Module) -> None:
    """Every BatchNorm2d below ``module`` -> a :class:`FixedGammaBatchNorm2d` of the same settings."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(
                module,
                name,
                FixedGammaBatchNorm2d(child.num_features, eps=child.eps, momentum=child.momentum),
            )
        else:
            _fix_gamma(child)


class MXNetInceptionV3(InceptionV3):
    """MXNet's Inception-v3 (see the module docstring). Taps as :class:`InceptionV3` (``Mixed_6e`` =
    ``ch_concat_mixed_7_chconcat``, ``Mixed_7c`` = ``ch_concat_mixed_10_chconcat``).

    Expects the original's input: RGB pixels in 0..255 minus the means (123, 117, 104), no scaling.
    ``mxnet_names`` maps each convolution / BatchNorm (module path) to its MXNet name.
    """

    input_mean = CAFFE_MEAN
    input_std = PIXEL_STD

    def __init__(self) -> None:
        super().__init__()
        self.Mixed_7c = MaxPoolInceptionE(2048)
        _fix_gamma(self)
        self.mxnet_names = _mxnet_names(self)


def _mxnet_names(net: nn.Module) -> dict[str, str]:
    """``{"Mixed_5b.branch1x1.conv": "mixed_conv_conv2d", "Mixed_5b.branch1x1.bn": "mixed_conv_batchnorm",
    ...}``: MXNet's ``Conv`` helper names its layers ``{name}{suffix}_conv2d`` / ``_batchnorm``."""
    names = {}
    mixed = [n for n, _ in net.named_children() if n.startswith("Mixed")]
    for name, block in net.named_children():
        if name in _STEM:
            towers = {"": _STEM[name]}
        elif name in mixed:
            index = mixed.index(name)
            prefix = "mixed" if index == 0 else f"mixed_{index}"
            kind = next(k for k in _TOWERS if isinstance(block, k))
            towers = {f"{branch}.": f"{prefix}_{tower}" for branch, tower in _TOWERS[kind].items()}
        else:
            continue
        for path, base in towers.items():
            names[f"{name}.{path}conv"] = f"{base}_conv2d"
            names[f"{name}.{path}bn"] = f"{base}_batchnorm"
    return names
