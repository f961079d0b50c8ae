"""``conv1x1(relu(x))`` with its ReLU's backward written in place: autograd's gradients."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from zoo_pixelcnn.networks import ReluThenPointwise


@pytest.mark.parametrize("bias", [True, False])
def test_gradients_are_autograds(bias):
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, requires_grad=True) if bias else None
    inputs = (x, weight, b) if bias else (x, weight)
    assert torch.autograd.gradcheck(lambda *a: ReluThenPointwise.apply(*a, *([] if bias else [None])),
                                    inputs)
    out = ReluThenPointwise.apply(x, weight, b)
    assert torch.equal(out, F.conv2d(F.relu(x), weight, b))
