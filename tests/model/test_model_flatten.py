"""Flattening order of the heads: conv channel -> (anchor index, coordinate / class) as the original."""

from __future__ import annotations

import torch

from tests.model.model_helpers import tiny_ssd


def _poke(module: torch.nn.Module, channel: int, y: int, x: int, value: float):
    """Forward hook: the module's output becomes zero except ``value`` at (image 1, channel, y, x)."""

    def hook(_module, _inputs, output):
        out = torch.zeros_like(output)
        out[1, channel, y, x] = value
        return out

    return module.register_forward_hook(hook)


def test_known_value_in_one_conv_channel_lands_at_the_expected_anchor():
    model = tiny_ssd(num_classes=3).eval()
    c1 = model.num_classes + 1
    # layer 1 ('stride8'): 8x8 map, A=6 anchors per location, after layer 0's 16*16*4 anchors
    layer, (h, w), a_per = 1, model.feature_shapes(64, 64)[1], model.num_anchors[1]
    assert (h, w, a_per) == (8, 8, 6)
    offset = 16 * 16 * 4
    y, x, a, coord, cls = 5, 3, 4, 2, 2
    base = model.layer_names[layer]
    hooks = [
        _poke(getattr(model, f"{base}_loc_pred_conv"), 4 * a + coord, y, x, 7.0),
        _poke(getattr(model, f"{base}_cls_pred_conv"), a * c1 + cls, y, x, 9.0),
    ]
    with torch.no_grad():
        loc, cls_preds = model(torch.rand(2, 3, 64, 64))
    for hk in hooks:
        hk.remove()
    anchor = offset + (y * w + x) * a_per + a
    loc_hit = (loc == 7.0).nonzero().tolist()
    assert loc_hit == [[1, 4 * anchor + coord]]
    cls_hit = (cls_preds == 9.0).nonzero().tolist()
    assert cls_hit == [[1, cls, anchor]]
    # and that anchor is the one multibox_prior puts at (y, x), number a, of layer 1
    box = model.anchors[anchor]
    centre = (box[:2] + box[2:]) / 2
    assert torch.allclose(centre, torch.tensor([(x + 0.5) / w, (y + 0.5) / h]), atol=1e-6)


def test_each_layer_contributes_its_block_in_order():
    model = tiny_ssd().eval()
    counts = [h * w * a for (h, w), a in zip(model.feature_shapes(64, 64), model.num_anchors, strict=True)]
    for layer, base in enumerate(model.layer_names):
        hook = _poke(getattr(model, f"{base}_cls_pred_conv"), 0, 0, 0, 5.0)  # anchor 0, background, (0, 0)
        with torch.no_grad():
            _, cls_preds = model(torch.rand(2, 3, 64, 64))
        hook.remove()
        assert (cls_preds == 5.0).nonzero().tolist() == [[1, 0, sum(counts[:layer])]]
