"""Building blocks of the SSD neck and heads (spec §3): extra layers, L2 normalisation, prediction convs.

``depthwise=True`` swaps in the SSDLite variants (Sandler et al. 2018): depthwise-separable 3x3 convs with
BatchNorm + ReLU6 in the extra layers and in front of 1x1 prediction convs.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class ConvReLU(nn.Conv2d):
    """A convolution followed by an in-place ReLU (MXNet's ``*_conv`` + ``*_relu`` pair, one module)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if (
            x.shape[-2:] == (1, 1)
            and self.stride != (1, 1)
            and self.padding == (1, 1)
            and self.kernel_size == (3, 3)
        ):
            # A strided 3x3 (pad 1) conv of a 1x1 map is the same 1x1 output at stride 1; stride 1 also avoids
            # a CPU bfloat16 backward that returns garbage weight gradients for this shape (torch 2.14).
            out = F.conv2d(x, self.weight, self.bias, 1, 1, self.dilation, self.groups)
        else:
            out = super().forward(x)
        return F.relu(out, inplace=True)


def conv_bn_relu6(
    in_ch: int, out_ch: int, kernel: int, stride: int = 1, padding: int = 0, groups: int = 1
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm + ReLU6, as in SSDLite."""
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(in_ch, out_ch, kernel, stride, padding, groups=groups, bias=False),
            bn=nn.BatchNorm2d(out_ch, eps=1e-3, momentum=0.03),
            relu=nn.ReLU6(inplace=True),
        )
    )


def extra_layer(
    in_ch: int, num_filter: int, stride: int, pad: int, min_filter: int = 128, depthwise: bool = False
) -> tuple[nn.Module, nn.Module]:
    """The two convs of ``multi_layer_feature``'s extra block: 1x1 with ``max(min_filter, num_filter // 2)``
    filters, then 3x3 with ``num_filter`` filters at ``stride`` / ``pad``, each followed by a ReLU.

    Returns ``(conv_1x1, conv_3x3)``; (N, in_ch, H, W) -> (N, num_filter, H', W').
    """
    mid = max(min_filter, num_filter // 2)
    if not depthwise:
        return ConvReLU(in_ch, mid, 1), ConvReLU(mid, num_filter, 3, stride, pad)
    conv_3x3 = nn.Sequential(
        OrderedDict(
            depthwise=conv_bn_relu6(mid, mid, 3, stride, pad, groups=mid),
            pointwise=conv_bn_relu6(mid, num_filter, 1),
        )
    )
    return conv_bn_relu6(in_ch, mid, 1), conv_3x3


def prediction_conv(in_ch: int, out_ch: int, depthwise: bool = False) -> nn.Module:
    """``*_loc_pred_conv`` / ``*_cls_pred_conv``: 3x3 pad 1 conv (or depthwise 3x3 + BN + ReLU6 + 1x1)."""
    if not depthwise:
        return nn.Conv2d(in_ch, out_ch, 3, padding=1)
    return nn.Sequential(
        OrderedDict(
            depthwise=conv_bn_relu6(in_ch, in_ch, 3, 1, 1, groups=in_ch),
            pointwise=nn.Conv2d(in_ch, out_ch, 1),
        )
    )


def l2_normalize(x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """MXNet ``L2Normalization(mode='channel')`` times a learnable scale.

    ``x`` (N, C, H, W), ``scale`` (1, C, 1, 1) -> ``scale * x / sqrt(sum_c x^2 + 1e-10)``.
    """
    return x * torch.rsqrt(x.pow(2).sum(1, keepdim=True) + 1e-10) * scale


def flatten_predictions(
    loc: torch.Tensor, cls: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """One layer's head outputs in the original's anchor order (row-major y, x, then anchor).

    ``loc`` (N, 4A_k, H, W) -> (N, H*W*A_k*4); ``cls`` (N, A_k*(C+1), H, W) -> (N, H*W*A_k, C+1).
    """
    n = loc.shape[0]
    return loc.permute(0, 2, 3, 1).reshape(n, -1), cls.permute(0, 2, 3, 1).reshape(n, -1, num_classes + 1)
