import math

import pytest
import torch

from multibox.ops import multibox_loss, smooth_l1


def _case(seed=0, n=2, num_classes=3, num_anchors=6):
    g = torch.Generator().manual_seed(seed)
    cls_preds = torch.randn(n, num_classes + 1, num_anchors, generator=g, dtype=torch.float64)
    loc_preds = torch.randn(n, 4 * num_anchors, generator=g, dtype=torch.float64) * 1.5
    cls_target = torch.randint(-1, num_classes + 1, (n, num_anchors), generator=g).double()
    positive = (cls_target > 0).repeat_interleave(4, dim=1)
    loc_target = torch.randn(n, 4 * num_anchors, generator=g, dtype=torch.float64) * positive
    return cls_preds, loc_preds, cls_target, loc_target, positive.double()


def test_smooth_l1_hand_computed():
    x = torch.tensor([-2.0, -0.5, 0.0, 0.5, 2.0])
    torch.testing.assert_close(smooth_l1(x), torch.tensor([1.5, 0.125, 0.0, 0.125, 1.5]))
    # sigma 2: 0.5 * 4 x^2 below 1/4, else |x| - 1/8
    torch.testing.assert_close(smooth_l1(torch.tensor([0.2, 1.0]), sigma=2.0), torch.tensor([0.08, 0.875]))


def test_values_hand_computed():
    cls_preds = torch.tensor([[[0.0, 1.0, 2.0], [math.log(3.0), 0.0, 2.0]]])  # (1, 2, 3)
    cls_target = torch.tensor([[1.0, 0.0, -1.0]])
    loc_preds = torch.tensor([[0.5, 2.0, 0.0, 0.0] + [9.0] * 8])
    loc_target = torch.zeros(1, 12)
    loc_mask = torch.tensor([[1.0] * 4 + [0.0] * 8])
    cls_loss, loc_loss = multibox_loss(cls_preds, loc_preds, cls_target, loc_target, loc_mask)
    # anchor 0: -log(3/4); anchor 1: -log(e/(e+1)); anchor 2 ignored; divided by 2 valid anchors
    expected_cls = (-math.log(3 / 4) - math.log(math.e / (math.e + 1))) / 2
    assert cls_loss.item() == pytest.approx(expected_cls, rel=1e-6)
    # smooth-l1: .125 + 1.5 over 2 non-zero elements
    assert loc_loss.item() == pytest.approx((0.125 + 1.5) / 2, rel=1e-6)
    cls_loss, loc_loss = multibox_loss(cls_preds, loc_preds, cls_target, loc_target, loc_mask, "num_pos")
    assert cls_loss.item() == pytest.approx(expected_cls * 2, rel=1e-6)  # one positive
    assert loc_loss.item() == pytest.approx(0.125 + 1.5, rel=1e-6)


@pytest.mark.parametrize("normalization", ["valid", "num_pos"])
def test_gradient_matches_hand_written_formula(normalization):
    cls_preds, loc_preds, cls_target, loc_target, loc_mask = _case()
    cls_preds.requires_grad_(True)
    loc_preds.requires_grad_(True)
    cls_loss, loc_loss = multibox_loss(cls_preds, loc_preds, cls_target, loc_target, loc_mask, normalization)
    (cls_loss + loc_loss).backward()

    valid = cls_target != -1
    one_hot = torch.nn.functional.one_hot(cls_target.clamp_min(0).long(), cls_preds.shape[1]).permute(0, 2, 1)
    diff = loc_mask * (loc_preds.detach() - loc_target)
    if normalization == "valid":  # SoftmaxOutput / MakeLoss 'valid' counts
        cls_count, loc_count = valid.sum(), (smooth_l1(diff) > 0).sum()
    else:
        cls_count = loc_count = (cls_target > 0).sum()
    expected_cls = (torch.softmax(cls_preds.detach(), 1) - one_hot) * valid.unsqueeze(1) / cls_count
    expected_loc = torch.where(diff.abs() < 1, diff, diff.sign()) * loc_mask / loc_count
    torch.testing.assert_close(cls_preds.grad, expected_cls.to(cls_preds.grad.dtype))
    torch.testing.assert_close(loc_preds.grad, expected_loc.to(loc_preds.grad.dtype))


def test_no_valid_anchors_gives_zero_not_nan():
    cls_preds, loc_preds, _, loc_target, _ = _case()
    cls_target = torch.full((2, 6), -1.0)
    cls_loss, loc_loss = multibox_loss(cls_preds, loc_preds, cls_target, loc_target, torch.zeros(2, 24))
    assert cls_loss.item() == 0 and loc_loss.item() == 0


def test_bad_arguments_raise():
    cls_preds, loc_preds, cls_target, loc_target, loc_mask = _case()
    with pytest.raises(ValueError, match="normalization"):
        multibox_loss(cls_preds, loc_preds, cls_target, loc_target, loc_mask, "batch")
    with pytest.raises(ValueError, match="loc_mask"):
        multibox_loss(cls_preds, loc_preds, cls_target, loc_target, loc_mask[:, :-4])
    with pytest.raises(ValueError, match="cls_target"):
        multibox_loss(cls_preds, loc_preds, cls_target[:, :-1], loc_target, loc_mask)
