"""The trainer's Adam(W) step calls torch's fused kernel itself: the same numbers as
``optimizer.step()``, the same state, and ``optimizer.step()`` wherever it would differ."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.training.adam_step import AdamStep


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 1))


def _run(optimizer_of, through_adam_step: bool, steps: int = 7):
    """Train a small model ``steps`` steps, under a schedule; return it and its optimizer."""
    model = _model()
    optimizer = optimizer_of(model.parameters())
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 / (1 + s))
    adam = AdamStep(optimizer)
    generator = torch.Generator().manual_seed(1)
    for _ in range(steps):
        x = torch.randn(16, 3, generator=generator)
        adam.zero_grad() if through_adam_step else optimizer.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        adam.step() if through_adam_step else optimizer.step()
        schedule.step()
    return model, optimizer, adam


def _state_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    return all(torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
               for key in a for x, y in [(a[key], b[key])])


OPTIMIZERS = {
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.05, weight_decay=0.1, fused=True),
    "adam-l2": lambda p: torch.optim.Adam(p, lr=0.05, weight_decay=0.1, fused=True,
                                          betas=(0.8, 0.95), eps=1e-6),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_the_kernel_called_directly_is_optimizer_step_number_for_number(name):
    want_model, want_opt, _ = _run(OPTIMIZERS[name], through_adam_step=False)
    got_model, got_opt, adam = _run(OPTIMIZERS[name], through_adam_step=True)
    assert adam.applies
    for want, got in zip(want_model.parameters(), got_model.parameters()):
        assert torch.equal(want, got)
    for want, got in zip(want_opt.state.values(), got_opt.state.values()):
        assert _state_equal(want, got)  # step counts and moments alike
    assert want_opt.param_groups[0]["lr"] == got_opt.param_groups[0]["lr"]


@pytest.mark.parametrize("optimizer_of", [
    lambda p: torch.optim.AdamW(p, lr=0.05, fused=True, amsgrad=True),
    lambda p: torch.optim.AdamW(p, lr=0.05, foreach=True),
    lambda p: torch.optim.SGD(p, lr=0.05),
    lambda p: torch.optim.AdamW([{"params": list(p)[:2]}, {"params": list(p)[2:]}], lr=0.05,
                                fused=True),
])
def test_anything_else_goes_through_optimizer_step(optimizer_of):
    want_model, _, _ = _run(optimizer_of, through_adam_step=False)
    got_model, _, adam = _run(optimizer_of, through_adam_step=True)
    assert not adam.applies
    for want, got in zip(want_model.parameters(), got_model.parameters()):
        assert torch.equal(want, got)


def test_a_step_hook_is_honoured():
    model = _model()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.05, fused=True)
    calls = []
    optimizer.register_step_post_hook(lambda *args: calls.append(1))
    adam = AdamStep(optimizer)
    for _ in range(2):
        model(torch.ones(2, 3)).sum().backward()
        adam.step()
    assert not adam.applies and calls == [1, 1]
