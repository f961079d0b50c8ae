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


def test_a_plain_network_trains_under_autocast():
    import zoo

    torch.manual_seed(0)
    model = zoo.get_family("pixelcnn").build({"shape": [1, 8, 8], "levels": 2, "variant": "plain",
                                              "channels": 8, "layers": 2})
    x = torch.randint(2, (4, 1, 8, 8), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = -model.log_prob(x).float().mean()
    loss.backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and g.dtype == torch.float32 and torch.isfinite(g).all()
               for g in grads)
