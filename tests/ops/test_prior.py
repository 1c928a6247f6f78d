import math

import numpy as np
import pytest
import torch

from multibox.ops import default_boxes, multibox_prior
from tests.golden import golden_files, load_golden


@pytest.mark.parametrize("path", golden_files("prior"), ids=lambda p: p.stem)
def test_matches_mxnet_golden(path):
    arrays, p = load_golden(path)
    anchors = multibox_prior((p["h"], p["w"]), p["sizes"], p["ratios"], p["steps"], p["offsets"], p["clip"])
    np.testing.assert_allclose(anchors.numpy(), arrays["anchors"], rtol=0, atol=1e-7)


def test_hand_computed_2x3_map():
    # Spec 4.1: H=2, W=3, sizes (.5, .25), ratios (1, 2, .5); first location, centre (1/6, 1/4).
    anchors = multibox_prior((2, 3), sizes=(0.5, 0.25), ratios=(1, 2, 0.5))
    assert anchors.shape == (2 * 3 * 4, 4)
    cx, cy, hw = 1 / 6, 1 / 4, 2 / 3  # width correction H/W
    expected = [
        [cx - 0.5 * hw / 2, cy - 0.5 / 2, cx + 0.5 * hw / 2, cy + 0.5 / 2],
        [cx - 0.25 * hw / 2, cy - 0.25 / 2, cx + 0.25 * hw / 2, cy + 0.25 / 2],
        [
            cx - 0.5 * hw * 2**0.5 / 2,
            cy - 0.5 / 2**0.5 / 2,
            cx + 0.5 * hw * 2**0.5 / 2,
            cy + 0.5 / 2**0.5 / 2,
        ],
        [
            cx - 0.5 * hw / 2**0.5 / 2,
            cy - 0.5 * 2**0.5 / 2,
            cx + 0.5 * hw / 2**0.5 / 2,
            cy + 0.5 * 2**0.5 / 2,
        ],
    ]
    np.testing.assert_allclose(anchors[:4].numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(anchors[:4].numpy()[:, 2], [0.3333, 0.25, 0.4024, 0.2845], atol=1e-4)
    # Row-major over (y, x): location (y=0, x=1) starts at anchor 4 with centre x = 1.5 / 3.
    centre = (anchors[4, 0] + anchors[4, 2]) / 2
    assert centre.item() == pytest.approx(0.5)
    # Last location (y=1, x=2): centre (2.5/3, 1.5/2).
    last = anchors[-4]
    assert ((last[0] + last[2]) / 2).item() == pytest.approx(2.5 / 3)
    assert ((last[1] + last[3]) / 2).item() == pytest.approx(0.75)


def test_explicit_steps_and_clip():
    anchors = multibox_prior(
        (2, 2), sizes=(0.8,), ratios=(1,), steps=(0.5, 0.25), offsets=(0.5, 0.5), clip=True
    )
    assert anchors.min() >= 0 and anchors.max() <= 1
    unclipped = multibox_prior((2, 2), sizes=(0.8,), ratios=(1,), steps=(0.5, 0.25))
    centres_x = (unclipped[:, 0] + unclipped[:, 2]) / 2
    np.testing.assert_allclose(centres_x.numpy(), [0.125, 0.375, 0.125, 0.375], atol=1e-7)


def test_dtype_and_device_arguments():
    anchors = multibox_prior((3, 3), (0.2, 0.3), (1, 2), dtype=torch.float16, device="cpu")
    assert anchors.dtype == torch.float16 and anchors.shape == (27, 4)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"feature_shape": (3,)}, "feature_shape"),
        ({"feature_shape": (0, 3)}, "positive"),
        ({"sizes": ()}, "sizes"),
        ({"ratios": (1, -2)}, "ratios"),
        ({"steps": (0.1, -1)}, "steps"),
        ({"offsets": (1.5, 0.5)}, "offsets"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    args = {"feature_shape": (3, 3), "sizes": (0.2,), "ratios": (1,)} | kwargs
    with pytest.raises(ValueError, match=message):
        multibox_prior(**args)


def test_default_boxes_follow_default_box_generator_on_any_map():
    from torchvision.models.detection.anchor_utils import DefaultBoxGenerator
    from torchvision.models.detection.image_list import ImageList

    generator = DefaultBoxGenerator([[2, 3]], min_ratio=0.3, max_ratio=0.9)  # one map, automatic steps
    shape = (3, 5)  # non-square: no width correction, centres (i + 0.5) / 3 and / 5
    theirs = generator(ImageList(torch.zeros(1, 3, 60, 100), [(60, 100)]), [torch.zeros(1, 1, *shape)])[0]
    s, s_next = generator.scales
    ours = default_boxes(shape, [s, math.sqrt(s * s_next)], [1, 2, 0.5, 3, 1 / 3])
    assert torch.equal(ours * torch.tensor([100, 60, 100, 60]), theirs)
    # clip clamps widths and heights (not corners): the 3:1 box of scale 0.9 is exactly the image's width
    wide = default_boxes((1, 1), [0.9], [1, 3])[1]
    assert wide.tolist() == [
        0.0,
        pytest.approx(0.5 - 0.9 / math.sqrt(3) / 2),
        1.0,
        pytest.approx(0.5 + 0.9 / math.sqrt(3) / 2),
    ]
    assert default_boxes((1, 1), [0.9], [1, 3], clip=False)[1, 0] < 0
