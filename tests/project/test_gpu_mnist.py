"""benchmarks/gpu_mnist.py: its budget arithmetic and its refusals, without training MNIST
(the run itself is a benchmark: ``python -m benchmarks.gpu_mnist``)."""

from __future__ import annotations

import pytest
import torch

from benchmarks import gpu_mnist
from zoo.catalog import catalog
from zoo.catalog.recipe import Recipe


def test_the_gpu_entries_are_the_catalogs_gpu_tier():
    for name in gpu_mnist.GPU_ENTRIES:
        entry = catalog().get(name)
        assert "gpu_mnist.py" in entry.description and "mnist" in entry.dataset


def test_a_budget_squeezes_the_recipe_into_its_steps():
    recipe = Recipe(steps=60000, warmup_steps=500, eval_every=2500, val_fraction=0.05)
    short = gpu_mnist.budget_recipe(recipe, 40, validate=False)
    assert (short.steps, short.warmup_steps, short.eval_every, short.val_fraction) == (40, 4, 40, 0.0)
    short.validate()  # a warm-up as long as the run would be refused
    kept = gpu_mnist.budget_recipe(recipe, 60000, validate=True)
    assert kept == recipe


@pytest.mark.parametrize("argv, message", [
    (["--minutes", "11"], "--minutes must be in"),
    (["--minutes", "0"], "--minutes must be in"),
])
def test_a_budget_past_ten_minutes_is_refused(argv, message, capsys):
    with pytest.raises(SystemExit):
        gpu_mnist.main(argv)
    assert message in capsys.readouterr().err


def test_no_data_is_one_line(tmp_path, capsys):
    assert gpu_mnist.main(["--data", str(tmp_path), "--device", "cpu"]) == 2
    expected = f"error: no MNIST/raw under {tmp_path}: pass --data or set ZOO_DATA"
    assert capsys.readouterr().err.strip() == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown without CUDA")
def test_no_cuda_says_how_to_get_cpu_figures(tmp_path, capsys):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    assert gpu_mnist.main(["--data", str(tmp_path)]) == 2
    assert "--device cpu --minutes M" in capsys.readouterr().err
