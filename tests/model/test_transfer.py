"""Fine-tuning's weight transfer: kept classes, background and boxes predict exactly as the source detector did
before any step; new classes keep their fresh initialisation; a detector of another network is refused."""

from __future__ import annotations

import pytest
import torch

from multibox.errors import DataError
from multibox.model import build_ssd
from multibox.model.transfer import class_rows, transfer_detector_weights

SOURCE_CLASSES = ["star", "dog", "circle", "cat"]
TARGET_CLASSES = ["circle", "square", "triangle", "star"]


def _detector(classes, seed: int, **options) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_ssd("tiny", len(classes), 64, **options).eval()
    with torch.no_grad():  # every weight and statistic drawn, so no two rows agree by accident
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point():
                tensor.copy_(
                    torch.rand_like(tensor) + 0.5 if "running_var" in name else torch.randn_like(tensor) * 0.3
                )
    return model


def test_class_rows_map_background_and_shared_names():
    assert class_rows(SOURCE_CLASSES, TARGET_CLASSES) == [0, 3, None, None, 1]


@pytest.mark.parametrize("options", [{}, {"depthwise": True}], ids=["conv", "depthwise"])
def test_kept_classes_background_and_boxes_predict_as_the_source(options):
    source = _detector(SOURCE_CLASSES, seed=1, **options)
    target = _detector(TARGET_CLASSES, seed=2, **options)
    fresh = _detector(TARGET_CLASSES, seed=2, **options)
    transfer = transfer_detector_weights(target, source.state_dict(), SOURCE_CLASSES, TARGET_CLASSES)
    assert (transfer.kept, transfer.new, transfer.dropped) == (
        ("circle", "star"),
        ("square", "triangle"),
        ("dog", "cat"),
    )
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        source_loc, source_cls = source(images)  # (N, 4A), (N, C+1, A)
        target_loc, target_cls = target(images)
    torch.testing.assert_close(target_loc, source_loc, rtol=0, atol=0)
    for target_row, source_row in [(0, 0), (1, 3), (4, 1)]:  # background, circle, star
        torch.testing.assert_close(target_cls[:, target_row], source_cls[:, source_row], rtol=0, atol=0)
    for name, weight in target.state_dict().items():  # square, triangle: their head rows as initialised
        if "_cls_pred_conv" in name and name.endswith(("_cls_pred_conv.weight", "pointwise.weight")):
            rows = weight.reshape(-1, len(TARGET_CLASSES) + 1, *weight.shape[1:])
            initial = fresh.state_dict()[name].reshape(rows.shape)
            assert torch.equal(rows[:, 2:4], initial[:, 2:4]), name
    assert not torch.allclose(target_cls[:, 2], source_cls[:, 2])


def test_the_same_classes_give_the_same_detector():
    source = _detector(SOURCE_CLASSES, seed=1)
    target = _detector(SOURCE_CLASSES, seed=2)
    transfer_detector_weights(target, source.state_dict(), SOURCE_CLASSES, SOURCE_CLASSES)
    for name, tensor in source.state_dict().items():
        assert torch.equal(target.state_dict()[name], tensor), name


def test_a_detector_of_another_layout_is_refused_by_name():
    source = _detector(SOURCE_CLASSES, seed=1, depthwise=True)
    target = _detector(TARGET_CLASSES, seed=2)
    with pytest.raises(
        DataError, match=r"src.pt has no weight multi_feat_2_conv_1x1.weight: it is another network"
    ):
        transfer_detector_weights(
            target, source.state_dict(), SOURCE_CLASSES, TARGET_CLASSES, source="src.pt"
        )
    other = _detector(SOURCE_CLASSES, seed=1).state_dict()
    other["multi_feat_2_conv_1x1.weight"] = other["multi_feat_2_conv_1x1.weight"][:-1]  # one filter fewer
    with pytest.raises(DataError, match=r"weight multi_feat_2_conv_1x1.weight has shape \(\d+, "):
        transfer_detector_weights(target, other, SOURCE_CLASSES, TARGET_CLASSES)
