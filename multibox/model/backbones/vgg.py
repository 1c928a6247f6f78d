"""``vgg16_reduced``: VGG-16 with the atrous fc6/fc7 of SSD, layer names as MXNet's ``vgg16_reduced`` symbol.

Layout (spec §2.4): conv1_1..conv5_3 (3x3, pad 1, ReLU), max-pools 2x2/2 with **ceil mode at pool3**,
pool5 = max 3x3/1 pad 1, fc6 = 3x3 conv with 1024 filters, pad 6, dilation 6, fc7 = 1x1 conv with 1024.
torchvision's ``vgg16()`` weights load with a key rename (:data:`TORCHVISION_FEATURE_KEYS`; fc6/fc7 by
:func:`multibox.model.weights.reduce_vgg16_fc`).

``VGG16Reduced(batch_norm=True)`` (network ``vgg16_reduced_bn``) puts a BatchNorm ``bnX_Y`` between every
convX_Y and its ReLU, as torchvision's ``vgg16_bn()`` (keys: :data:`TORCHVISION_BN_FEATURE_KEYS`): the VGG that
trains from random weights (ScratchDet, Zhu et al. 2019). In eval mode each BatchNorm is an affine map that
the ONNX export folds into its convolution, so the exported graph is vgg16_reduced's.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from multibox.model.backbones.base import CAFFE_MEAN, PIXEL_STD, SequentialBackbone

# (block, number of convs, channels)
_VGG16_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))


def _feature_indices(batch_norm: bool) -> dict[str, int]:
    """Our layer names -> their index in torchvision's ``vgg16().features`` (``vgg16_bn()``'s: + ``bnX_Y``)."""
    indices, index = {}, 0
    for block, convs, _ in _VGG16_BLOCKS:
        for i in range(1, convs + 1):
            indices[f"conv{block}_{i}"] = index
            if batch_norm:
                indices[f"bn{block}_{i}"] = index + 1
            index += 3 if batch_norm else 2  # conv, (bn,) relu
        index += 1  # max-pool
    return indices


TORCHVISION_FEATURE_KEYS = _feature_indices(batch_norm=False)
TORCHVISION_BN_FEATURE_KEYS = _feature_indices(batch_norm=True)


class VGG16Reduced(SequentialBackbone):
    """VGG-16 reduced (atrous fc6/fc7). Taps: every ``reluX_Y``, ``poolN``, ``relu6``, ``relu7``.

    Expects caffe-style input: RGB pixels in 0..255 minus the means (123, 117, 104), no scaling
    (``input_mean`` / ``input_std`` express that in 0..1 units). ``batch_norm``: a BatchNorm after every conv
    of conv1_1..conv5_3 (not fc6/fc7, as torchvision's ``vgg16_bn``).
    """

    input_mean = CAFFE_MEAN
    input_std = PIXEL_STD

    def __init__(self, batch_norm: bool = False) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        channels: dict[str, int] = {}
        in_ch = 3
        for block, convs, out_ch in _VGG16_BLOCKS:
            for i in range(1, convs + 1):
                layers[f"conv{block}_{i}"] = nn.Conv2d(in_ch, out_ch, 3, padding=1)
                if batch_norm:
                    layers[f"bn{block}_{i}"] = nn.BatchNorm2d(out_ch)
                layers[f"relu{block}_{i}"] = nn.ReLU(inplace=True)
                channels[f"relu{block}_{i}"] = out_ch
                in_ch = out_ch
            if block == 5:
                layers["pool5"] = nn.MaxPool2d(3, stride=1, padding=1)
            else:  # MXNet pooling_convention='full' (ceil) only at pool3
                layers[f"pool{block}"] = nn.MaxPool2d(2, stride=2, ceil_mode=block == 3)
            channels[f"pool{block}"] = out_ch
        layers["fc6"] = nn.Conv2d(512, 1024, 3, padding=6, dilation=6)
        layers["relu6"] = nn.ReLU(inplace=True)
        layers["fc7"] = nn.Conv2d(1024, 1024, 1)
        layers["relu7"] = nn.ReLU(inplace=True)
        channels.update(relu6=1024, relu7=1024)
        super().__init__(layers)
        # Pre-ReLU conv outputs are not tappable: the in-place ReLU overwrites them.
        self.out_channels = channels
        self.aliases = {f"{n}_output": n for n in channels}


class TorchvisionVGG16(VGG16Reduced):
    """The VGG-16 of torchvision's ``ssd300_vgg16``: the same layers as :class:`VGG16Reduced` (torchvision patches
    pool3 to ceil mode and puts the same pool5 / atrous fc6 / fc7 after conv5_3), with torchvision's input
    normalisation: RGB pixels in 0..255 minus (122.99925, 116.9991, 103.9992), i.e. its ``image_mean``
    (0.48235, 0.45882, 0.40784) and ``image_std`` 1/255 in 0..1 units.
    """

    input_mean = (0.48235, 0.45882, 0.40784)
    input_std = PIXEL_STD
