"""A big one-mask MADE computes its layers as blocks (``zoo_made.staircase``): the same
log-probabilities and gradients as the dense masked layers, and dense wherever it must be."""

from __future__ import annotations

import pytest
import torch
from zoo_made import staircase

import zoo

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CONFIGS = {
    "bernoulli": {"shape": [1, 5, 6], "levels": 2, "hidden": [40], "head": "bernoulli",
                  "ordering": "random"},
    "bernoulli-deep-binary": {"shape": [1, 5, 6], "levels": 2, "hidden": [24, 16],
                              "head": "bernoulli", "bit_inputs": "binary", "dropout": 0.0},
    "onehot": {"shape": [12], "levels": 4, "hidden": [30, 30], "ordering": "random",
               "connectivity": "even"},
    "embedding-tanh": {"shape": [12], "levels": 3, "hidden": [20], "inputs": "embedding",
                       "embedding_dim": 2, "activation": "tanh", "ordering": "random"},
}


def build(config: dict, monkeypatch) -> object:
    monkeypatch.setattr(staircase, "MIN_WEIGHTS", 0)  # small models, to test them fast
    torch.manual_seed(0)
    model = zoo.get_family("made").build(config)
    with torch.no_grad():
        model.packed.mul_(3.0)  # conditionals far from uniform
    return model


@pytest.mark.parametrize("name", list(CONFIGS))
def test_the_staircase_is_the_dense_function_with_the_same_gradients(name, monkeypatch):
    model = build(CONFIGS[name], monkeypatch)
    assert model.staircase is not None and all(len(b) > 1 for b in model.staircase.layers)
    x = torch.randint(model.levels, (32, *model.shape), generator=torch.Generator().manual_seed(1))
    results = []
    stairs = model.staircase
    for plan in (stairs, None):
        model.staircase = plan
        for p in model.parameters():
            p.grad = None
        log_p = model.log_prob(x)
        (log_p * torch.linspace(-1, 2, len(x))).sum().backward()
        results.append((log_p.detach(), [p.grad.clone() for p in model.parameters()
                                         if p.grad is not None]))
    (got, got_grads), (want, want_grads) = results
    assert torch.allclose(got, want, rtol=1e-5, atol=1e-4)
    assert len(got_grads) == len(want_grads)
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, rtol=1e-4, atol=1e-5)
    # The blocks really skip work: less than the dense layers' arithmetic.
    dense = sum(m.in_features * m.out_features for m in model.masked_modules().values())
    blocks = sum((b - a) * p for layer in stairs.layers for a, b, p in layer)
    assert blocks < 0.8 * dense


def test_small_models_and_others_stay_dense():
    torch.manual_seed(0)
    made = zoo.get_family("made")
    assert made.build({"shape": [1, 8, 8], "levels": 17, "hidden": [64]}).staircase is None
    big = {"shape": [1, 28, 28], "levels": 2, "hidden": [500], "head": "bernoulli"}
    assert made.build(big).staircase is not None
    assert made.build({**big, "direct": True}).staircase is None
    assert made.build({**big, "masks": 2}).staircase is None


def test_a_mask_whose_rows_are_not_prefixes_has_no_staircase():
    torch.manual_seed(0)
    mask = (torch.rand(6, 5) < 0.5).float()
    mask[0] = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0])  # no sorting makes both rows prefixes
    mask[1] = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0])
    assert staircase.plan([mask], [True]) is None
    stairs = (torch.arange(5)[None, :] < torch.tensor([1, 3, 5, 2, 4, 0])[:, None]).float()
    assert staircase.plan([stairs[:, torch.randperm(5)]], [True]) is not None


def test_under_autocast_the_layers_stay_dense_and_train(monkeypatch):
    # bf16 autocast casts each op's inputs; the blocks' own backward would not, and fail.
    model = build(CONFIGS["bernoulli"], monkeypatch)
    x = torch.randint(2, (8, *model.shape), generator=torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = -model.log_prob(x).float().mean()
    loss.backward()
    assert torch.isfinite(model.packed.grad).all() and model.packed.grad.abs().sum() > 0
