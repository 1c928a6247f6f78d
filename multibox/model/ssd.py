"""The SSD module: base network + extra layers + L2-norm scale + multibox heads + anchors (spec §3).

Parameter names follow MXNet's symbols (``relu4_3_scale``, ``relu4_3_loc_pred_conv``, ``multi_feat_2_conv_1x1``;
backbone parameters under ``backbone.``), so converting MXNet ``.params`` is a renaming (docs/model.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from multibox.errors import ConfigError
from multibox.model.backbones.base import Backbone
from multibox.model.detection_settings import DetectionSettings
from multibox.model.layers import extra_layer, flatten_predictions, l2_normalize, prediction_conv
from multibox.model.resize import boxes_to_pixels
from multibox.ops import default_boxes, multibox_detection, multibox_loss, multibox_prior, multibox_target
from multibox.ops.boxes import VARIANCES

# how anchors are generated: MXNet's MultiBoxPrior, or torchvision's DefaultBoxGenerator (same order per location)
ANCHOR_STYLES = {"mxnet": multibox_prior, "torchvision": default_boxes}


def _per_layer(name: str, value, num_layers: int) -> list:
    """Broadcast a scalar (or, for ``ratios``, one flat list) to every layer, or check a per-layer list."""
    if not isinstance(value, Sequence):
        return [value] * num_layers
    flat = len(value) > 0 and not isinstance(value[0], Sequence)
    if flat and name == "ratios":
        return [list(value)] * num_layers
    if flat and name == "sizes":
        raise ValueError("sizes must be one list per layer, e.g. [[.1, .141], [.2, .272], ...]")
    if len(value) != num_layers:
        raise ValueError(f"{name} has {len(value)} entries for {num_layers} layers")
    return list(value) if flat else [list(v) for v in value]


def _check_layers(from_layers, num_filters, strides, pads, num_classes: int) -> None:
    num_layers = len(from_layers)
    if num_layers == 0 or not from_layers[0]:
        raise ValueError("from_layers must be non-empty and start with a backbone layer name")
    for name, seq in (("num_filters", num_filters), ("strides", strides), ("pads", pads)):
        if len(seq) != num_layers:
            raise ValueError(f"{name} has {len(seq)} entries, from_layers has {num_layers}")
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1 (object classes without background), got {num_classes}")


class SSD(nn.Module):
    """Single Shot MultiBox Detector over any :class:`~multibox.model.backbones.Backbone`.

    Args (as ``get_symbol_train``; one entry per prediction layer):
        backbone: the base network.
        from_layers: tap names of the backbone; ``""`` appends an extra block to the previous layer.
        num_filters: 3x3 filters of extra blocks (-1 / ignored for taps).
        strides, pads: of each extra block's 3x3 conv (-1 for taps).
        sizes: per-layer anchor sizes (fractions of the image), e.g. ``[[.1, .141], ...]``.
        ratios: per-layer aspect ratios, or one flat list for all layers.
        normalizations: per-layer L2-norm scale init (-1 = none), or one number for all.
        steps: per-layer anchor steps as image fractions (``[]`` = automatic ``1/H``, ``1/W``).
        min_filter: lower bound of an extra block's 1x1 filters.
        num_classes: object classes without background (VOC: 20).
        data_shape: default input size ``s`` or ``(h, w)``; ``model.anchors`` is built for it.
        depthwise: SSDLite extras and heads (depthwise-separable convs with BN + ReLU6).
        image_mean, image_std: RGB normalisation of 0..1 inputs (default: what the backbone expects);
            ``forward`` also accepts uint8 images (divided by 255 first).
        init: initialise as the original (Xavier uniform weights, zero biases, scale = normalization),
            backbone included.
        anchor_style: ``"mxnet"`` (``multibox_prior``) or ``"torchvision"`` (``default_boxes``: torchvision's
            DefaultBoxGenerator arithmetic, widths/heights clamped to the image, no non-square correction).
    """

    def __init__(
        self,
        backbone: Backbone,
        from_layers: Sequence[str],
        num_filters: Sequence[int],
        strides: Sequence[int],
        pads: Sequence[int],
        sizes: Sequence[Sequence[float]],
        ratios: Sequence[float] | Sequence[Sequence[float]],
        normalizations: float | Sequence[float] = -1,
        steps: Sequence[float] = (),
        min_filter: int = 128,
        num_classes: int = 20,
        *,
        data_shape: int | tuple[int, int] = 300,
        depthwise: bool = False,
        image_mean: Sequence[float] | None = None,
        image_std: Sequence[float] | None = None,
        init: bool = True,
        anchor_style: str = "mxnet",
    ) -> None:
        super().__init__()
        _check_layers(from_layers, num_filters, strides, pads, num_classes)
        if anchor_style not in ANCHOR_STYLES:
            raise ConfigError(f"anchor_style must be one of {', '.join(ANCHOR_STYLES)}, got {anchor_style!r}")
        self.anchor_style = anchor_style
        self.from_layers = list(from_layers)
        self.num_classes = int(num_classes)
        self._set_anchor_layout(sizes, ratios, normalizations, steps)
        self.detection = DetectionSettings()  # how detect() decodes; stored in checkpoints
        h, w = (data_shape, data_shape) if isinstance(data_shape, int) else data_shape
        self.data_shape = (int(h), int(w))

        self.backbone = backbone
        self._add_extra_layers(num_filters, strides, pads, min_filter, depthwise)
        self._add_heads(depthwise)
        self._set_input_normalization(image_mean, image_std)
        self._shape_cache: dict[tuple[int, int], list[tuple[int, int]]] = {}
        self._anchor_cache: dict[tuple, torch.Tensor] = {}
        if init:
            self.reset_parameters()
        else:
            self.reset_scales()
        self.register_buffer("anchors", self._make_anchors(*self.data_shape), persistent=False)  # (A, 4)

    def _set_anchor_layout(self, sizes, ratios, normalizations, steps) -> None:
        """Per-layer ``sizes``, ``ratios``, ``normalizations``, ``steps`` and the anchors per location."""
        num_layers = len(self.from_layers)
        self.sizes = [[float(s) for s in v] for v in _per_layer("sizes", sizes, num_layers)]
        self.ratios = [[float(r) for r in v] for v in _per_layer("ratios", ratios, num_layers)]
        self.normalizations = [float(v) for v in _per_layer("normalizations", normalizations, num_layers)]
        self.steps = [float(s) for s in steps]
        if self.steps and len(self.steps) != num_layers:
            raise ValueError(f"steps has {len(self.steps)} entries for {num_layers} layers (or give none)")
        self.num_anchors = [len(s) + len(r) - 1 for s, r in zip(self.sizes, self.ratios, strict=True)]

    def _add_extra_layers(self, num_filters, strides, pads, min_filter: int, depthwise: bool) -> None:
        """Tap the backbone and append the extra blocks; sets ``channels``, ``layer_names``, ``extra_names``."""
        tap_channels = iter(self.backbone.set_taps([n for n in self.from_layers if n]))
        self.layer_names: list[str] = []  # original symbol name of each prediction layer's input
        self.extra_names: list[str | None] = []
        channels: list[int] = []
        for k, (name, nf, s, p) in enumerate(zip(self.from_layers, num_filters, strides, pads, strict=True)):
            if name:
                channels.append(next(tap_channels))
                self.layer_names.append(name.replace(".", "_"))
                self.extra_names.append(None)
            else:
                conv_1x1, conv_3x3 = extra_layer(channels[-1], int(nf), int(s), int(p), min_filter, depthwise)
                self.add_module(f"multi_feat_{k}_conv_1x1", conv_1x1)
                self.add_module(f"multi_feat_{k}_conv_3x3", conv_3x3)
                channels.append(int(nf))
                self.layer_names.append(f"multi_feat_{k}_conv_3x3_relu")
                self.extra_names.append(f"multi_feat_{k}")
        self.channels = channels

    def _add_heads(self, depthwise: bool) -> None:
        """The L2-norm scale (where ``normalizations`` > 0) and the loc / cls prediction convs of each layer."""
        for k, base in enumerate(self.layer_names):
            channels = self.channels[k]
            if (
                self.normalizations[k] > 0
            ):  # the real channel count (the original reads num_filters, see docs)
                self.register_parameter(f"{base}_scale", nn.Parameter(torch.empty(1, channels, 1, 1)))
            a = self.num_anchors[k]
            self.add_module(f"{base}_loc_pred_conv", prediction_conv(channels, 4 * a, depthwise))
            self.add_module(
                f"{base}_cls_pred_conv", prediction_conv(channels, a * (self.num_classes + 1), depthwise)
            )

    def _set_input_normalization(self, image_mean, image_std) -> None:
        """``input_scale`` / ``input_shift`` buffers from the RGB mean/std (default: the backbone's)."""
        mean = image_mean if image_mean is not None else self.backbone.input_mean
        std = image_std if image_std is not None else self.backbone.input_std
        mean = torch.tensor(mean, dtype=torch.float32)
        std = torch.tensor(std, dtype=torch.float32)
        self.register_buffer("input_scale", (1.0 / std).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("input_shift", (-mean / std).view(1, 3, 1, 1), persistent=False)

    # ------------------------------------------------------------------ parameters
    def reset_scales(self) -> None:
        """L2-norm scales back to their ``normalizations`` value (20 in the VGG presets)."""
        for k, base in enumerate(self.layer_names):
            if self.normalizations[k] > 0:
                nn.init.constant_(getattr(self, f"{base}_scale"), self.normalizations[k])

    def reset_parameters(self, backbone: bool = True) -> None:
        """The original's initialisation: Xavier-uniform conv/linear weights, zero biases, BN (1, 0), scales.

        ``backbone=False`` leaves the base network as it is (after loading pretrained weights).
        """
        for name, module in self.named_modules():
            if not backbone and name.startswith("backbone"):
                continue
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.reset_scales()

    # ------------------------------------------------------------------ forward
    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """``multi_layer_feature``: normalised images (N, 3, H, W) -> the prediction layers' inputs."""
        taps = iter(self.backbone(images))
        layers: list[torch.Tensor] = []
        for extra in self.extra_names:
            if extra is None:
                layers.append(next(taps))
            else:
                x = getattr(self, f"{extra}_conv_1x1")(layers[-1])
                layers.append(getattr(self, f"{extra}_conv_3x3")(x))
        return layers

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """0..1 float (or uint8) RGB images -> the backbone's input normalisation."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        return torch.addcmul(self.input_shift.to(images.dtype), images, self.input_scale.to(images.dtype))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images (N, 3, H, W), RGB in 0..1 (or uint8) -> ``loc_preds (N, 4A)``, ``cls_preds (N, C+1, A)``.

        ``loc_preds`` holds ``(dx, dy, dw, dh)`` per anchor; ``cls_preds`` are logits (class 0 = background).
        Anchor ``i`` of both is row ``i`` of :meth:`anchors_for` ``(H, W)``.
        """
        locs, clss = [], []
        for k, x in enumerate(self.features(self.normalize(images))):
            base = self.layer_names[k]
            if self.normalizations[k] > 0:
                x = l2_normalize(x, getattr(self, f"{base}_scale"))
            loc, cls = flatten_predictions(
                getattr(self, f"{base}_loc_pred_conv")(x),
                getattr(self, f"{base}_cls_pred_conv")(x),
                self.num_classes,
            )
            locs.append(loc)  # (N, H_k*W_k*A_k*4)
            clss.append(cls)  # (N, H_k*W_k*A_k, C+1)
        loc_preds = torch.cat(locs, dim=1)  # (N, 4A)
        cls_preds = torch.cat(clss, dim=1).transpose(1, 2)  # (N, C+1, A)
        return loc_preds, cls_preds

    # ------------------------------------------------------------------ anchors
    def feature_shapes(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(H_k, W_k)`` of every prediction layer for a ``height x width`` input (shape inference only)."""
        key = (int(height), int(width))
        if key not in self._shape_cache:
            meta = {
                k: torch.empty_like(v, device="meta")
                for k, v in list(self.named_parameters()) + list(self.named_buffers())
            }
            x = torch.empty(2, 3, *key, device="meta")  # batch 2: BatchNorm in train mode needs > 1 value
            try:
                with torch.no_grad():
                    feats = torch.func.functional_call(
                        _FeatureProbe(self), {f"ssd.{k}": v for k, v in meta.items()}, (x,)
                    )
            except RuntimeError as error:  # a layer's input shrank below its kernel
                raise ConfigError(
                    f"data_shape {key[0]}x{key[1]} is too small for this network: its feature maps vanish "
                    "before the last prediction layer; use a larger data_shape (e.g. 300)"
                ) from error
            self._shape_cache[key] = [(int(f.shape[2]), int(f.shape[3])) for f in feats]
        return self._shape_cache[key]

    def _make_anchors(self, height: int, width: int, device=None) -> torch.Tensor:
        anchors = []
        prior = ANCHOR_STYLES[self.anchor_style]
        for k, shape in enumerate(self.feature_shapes(height, width)):
            steps = (self.steps[k], self.steps[k]) if self.steps else (-1.0, -1.0)
            anchors.append(prior(shape, self.sizes[k], self.ratios[k], steps, device=device))
        return torch.cat(anchors, dim=0)  # (A, 4)

    def anchors_for(self, height: int, width: int) -> torch.Tensor:
        """Anchors ``(A, 4)`` (normalised corners) for an input of ``height x width``, cached per size."""
        if (int(height), int(width)) == self.data_shape and self.anchors.dtype == torch.float32:
            return self.anchors
        device = self.anchors.device  # (a model cast to half keeps float32 anchors here)
        key = (int(height), int(width), device)
        if key not in self._anchor_cache:
            self._anchor_cache[key] = self._make_anchors(height, width, device=device)
        return self._anchor_cache[key]

    # ------------------------------------------------------------------ training / inference
    def loss(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        overlap_threshold: float = 0.5,
        negative_mining_ratio: float = 3.0,
        negative_mining_thresh: float = 0.5,
        minimum_negative_samples: int = 0,
        normalization: str = "valid",
    ) -> dict[str, torch.Tensor]:
        """``get_symbol_train``: forward, ``multibox_target``, ``multibox_loss``.

        Args:
            images: (N, 3, H, W); labels: (N, M, >=5) rows ``[cls, x1, y1, x2, y2, ...]``, normalised
                corners, padding rows -1.

        Returns:
            ``loss`` (= cls_loss + loc_loss), ``cls_loss``, ``loc_loss`` scalars, and for the training metrics
            ``cls_preds`` (N, C+1, A), ``loc_preds`` (N, 4A), ``cls_target`` (N, A), ``loc_target`` /
            ``loc_mask`` (N, 4A).
        """
        loc_preds, cls_preds = self(images)
        anchors = self.anchors_for(images.shape[-2], images.shape[-1])
        with torch.no_grad():
            loc_target, loc_mask, cls_target = multibox_target(
                anchors,
                labels,
                cls_preds.detach(),
                overlap_threshold=overlap_threshold,
                ignore_label=-1,
                negative_mining_ratio=negative_mining_ratio,
                negative_mining_thresh=negative_mining_thresh,
                minimum_negative_samples=minimum_negative_samples,
                variances=VARIANCES,
            )
        cls_loss, loc_loss = multibox_loss(
            cls_preds, loc_preds, cls_target, loc_target, loc_mask, normalization=normalization
        )
        return {
            "loss": cls_loss + loc_loss,
            "cls_loss": cls_loss,
            "loc_loss": loc_loss,
            "cls_preds": cls_preds,
            "loc_preds": loc_preds,
            "cls_target": cls_target,
            "loc_target": loc_target,
            "loc_mask": loc_mask,
        }

    @torch.no_grad()
    def detect(
        self, images: torch.Tensor, settings: DetectionSettings | None = None, **overrides
    ) -> torch.Tensor:
        """``get_symbol``: softmax + ``multibox_detection``. Images (N, 3, H, W) -> (N, K, 6) rows
        ``[class_id, score, x1, y1, x2, y2]``, normalised corners, ``class_id`` -1 for empty rows, object
        classes 0-based, ``K = max_detections``.

        Decodes with ``settings`` (default: the model's own, ``model.detection``), any of whose fields a
        keyword overrides (``per_class=False`` is the original's one-class-per-anchor decoding). Runs without
        autograd (as an inference symbol)."""
        chosen = (settings or self.detection).replace(**overrides)
        loc_preds, cls_preds = self(images)
        anchors = self.anchors_for(images.shape[-2], images.shape[-1])
        return multibox_detection(
            cls_preds.softmax(dim=1),
            loc_preds,
            anchors,
            clip=chosen.clip,
            threshold=chosen.threshold,
            nms_threshold=chosen.nms_threshold,
            force_suppress=chosen.force_suppress,
            variances=VARIANCES,
            nms_topk=chosen.nms_topk,
            per_class=chosen.per_class,
            max_detections=chosen.max_detections,
        )

    @torch.no_grad()
    def predict(
        self,
        images: torch.Tensor | Sequence[torch.Tensor],
        image_sizes: Sequence[tuple[int, int]] | None = None,
        **detect_kwargs,
    ) -> list[dict[str, torch.Tensor]]:
        """Per-image ``{"boxes" (K, 4) pixels x1y1x2y2, "scores" (K,), "labels" (K,) 0-based classes}``.

        ``images`` is a batch already resized to the network input, with ``image_sizes`` the ``(h, w)`` of the
        originals (default: the batch size), or a list of CHW images of any size (uint8, or floats in 0..1),
        which are resized to ``data_shape`` as every other door resizes (:mod:`multibox.model.resize`) and
        whose own sizes are used. ``detect_kwargs`` go to :meth:`detect`.
        """
        if not isinstance(images, torch.Tensor):
            from multibox.model.resize import resize_for_network, tensor_to_image

            image_sizes = [(int(im.shape[-2]), int(im.shape[-1])) for im in images]
            resized = resize_for_network([tensor_to_image(im) for im in images], self.data_shape)
            images = torch.from_numpy(resized).to(self.anchors.device)
        if image_sizes is None:
            image_sizes = [(int(images.shape[-2]), int(images.shape[-1]))] * images.shape[0]
        if len(image_sizes) != images.shape[0]:
            raise ValueError(f"{len(image_sizes)} image_sizes for a batch of {images.shape[0]}")
        dets = self.detect(images, **detect_kwargs)  # (N, K, 6)
        results = []
        for det, (h, w) in zip(dets, image_sizes, strict=True):
            det = det[det[:, 0] >= 0]
            boxes = boxes_to_pixels(det[:, 2:6], w, h)
            results.append({"boxes": boxes, "scores": det[:, 1], "labels": det[:, 0].long()})
        return results


class _FeatureProbe(nn.Module):
    """Wraps an SSD so ``functional_call`` can run :meth:`SSD.features` on meta tensors (shape inference)."""

    def __init__(self, ssd: SSD) -> None:
        super().__init__()
        self.ssd = ssd

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.ssd.features(x)
