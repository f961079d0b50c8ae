"""The trainer flushes subnormal floats on the CPU while it runs, and only then."""

from __future__ import annotations

import torch

from zoo.catalog.recipe import Recipe
from zoo.data.source import Examples, TensorSource
from zoo.training.denormals import flushing_subnormals
from zoo.training.loop import maximise_likelihood

SUBNORMAL = 1e-39  # below float32's smallest normal number, 1.18e-38


def flushed() -> bool:
    return (torch.tensor([SUBNORMAL]) * 1.0).item() == 0.0


def test_flushing_holds_inside_the_block_and_ends_with_it():
    assert not flushed()
    with flushing_subnormals(torch.device("cpu")):
        assert flushed()
    assert not flushed()


def test_the_trainer_steps_with_subnormals_flushed():
    from zoo.api import get_family

    seen = []
    model = get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 4})
    data = Examples(TensorSource(torch.randn(64, 2)), "continuous")
    maximise_likelihood(model, data, Recipe(steps=4, batch_size=16, val_fraction=0.0,
                                            eval_every=2),
                        progress=False, device=torch.device("cpu"),
                        callback=lambda step, record: seen.append(flushed()))
    assert seen == [True, True]
    assert not flushed()
