import math

import pytest
import torch

from multibox.engine.train_metrics import MultiBoxMetric


def test_hand_computed_epoch_average():
    metric = MultiBoxMetric()
    logits = torch.tensor([[[0.0, math.log(3.0)], [0.0, 0.0]]])  # (1, 2, 2): probs [.5,.5] and [.75,.25]
    metric.update(logits, torch.tensor([[1.0, -1.0]]), torch.tensor([[0.5, 0.0, 0.0, 0.0] + [0.0] * 4]))
    metric.update(logits, torch.tensor([[0.0, 0.0]]), torch.zeros(1, 8))
    # CE: -log .5 (batch 1, one valid), -log .5 - log .75 (batch 2): over 3 valid anchors
    expected = (-math.log(0.5 + 1e-8) * 2 - math.log(0.75 + 1e-8)) / 3
    result = metric.compute()
    assert result["CrossEntropy"] == pytest.approx(expected)
    assert result["SmoothL1"] == pytest.approx(0.5 / 3)
    metric.reset()
    assert metric.compute() == {"CrossEntropy": 0.0, "SmoothL1": 0.0}
