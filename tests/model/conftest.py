"""Shared fixtures of the model tests: small, fast networks built once per module."""

from __future__ import annotations

import pytest
import torch

from multibox.model import SSD
from tests.model.model_helpers import tiny_ssd


@pytest.fixture
def tiny() -> SSD:
    return tiny_ssd()


@pytest.fixture(scope="session")
def vgg300() -> SSD:
    from multibox.model import build_ssd

    torch.manual_seed(0)
    return build_ssd("vgg16_reduced", num_classes=20, data_shape=300)
