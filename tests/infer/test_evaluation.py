"""Scoring: the test NLL, its standard error and bits/dim, and the model's mode afterwards."""

from __future__ import annotations

import math

import pytest
import torch

from zoo.infer.evaluation import evaluate_on
from zoo.plugin.registry import get_family


def model():
    torch.manual_seed(0)
    return get_family("made").build({"shape": [1, 2, 2], "levels": 3, "hidden": [8],
                                     "dropout": 0.5})


def test_evaluate_is_the_mean_nll_with_its_standard_error_and_bits_per_dim():
    m = model()
    x = torch.randint(0, 3, (50, 1, 2, 2), generator=torch.Generator().manual_seed(1))
    result = evaluate_on(m.train(), x, batch_size=7)  # several batches; dropout off while scoring
    with torch.no_grad():
        nll = -m.eval().log_prob(x).double()
    assert result.n == 50 and result.dims == 4
    assert result.nll == pytest.approx(nll.mean().item(), rel=1e-9)
    assert result.stderr == pytest.approx(nll.std().item() / math.sqrt(50), rel=1e-9)
    assert result.bits_per_dim == pytest.approx(nll.mean().item() / (4 * math.log(2)))


@pytest.mark.parametrize("training", [True, False])
def test_the_models_mode_is_restored_even_when_log_prob_raises(training):
    m = model().train(training)
    bad = torch.full((4, 1, 2, 2), 7)  # outside 0..2: log_prob raises ValueError
    with pytest.raises(ValueError, match="values must lie in 0..2"):
        evaluate_on(m, bad)
    assert m.training is training
    evaluate_on(m, bad.clamp(max=2))
    assert m.training is training
