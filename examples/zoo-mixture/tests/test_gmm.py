"""zoo-mixture's own tests: the conformance kit on several configs, plus what is special here.

Run them after installing the plugin (``pip install -e .``, or with ``src`` on PYTHONPATH).
"""

from __future__ import annotations

import math

import pytest
import torch
from zoo_mixture import zoo_register_datasets, zoo_register_entries
from zoo_mixture.data import load_eight_gaussians
from zoo_mixture.family import GMMFamily

from zoo.testing import check_family, family_checks

torch.set_num_threads(1)  # tiny models: threads only add overhead

CONFIGS = {
    "2d-full": {"shape": [2], "components": 4},
    "1d-diagonal": {"shape": [1], "components": 3, "covariance": "diagonal"},
    "3d-full": {"shape": [3], "components": 2},  # no grid integration in 3-D: kit says so
}


# One test per (config, check); the checks of one config share one built model.
CONFORMANCE = [pytest.param(check, id=f"{name}-{check}")
               for name, config in CONFIGS.items()
               for check in family_checks(GMMFamily(), config)]


@pytest.mark.parametrize("check", CONFORMANCE)
def test_conformance(check):
    check()


def test_the_kit_applies_the_likelihood_checks_of_a_mixture():
    report = check_family(GMMFamily(), CONFIGS["2d-full"])
    status = {r.check: r.status for r in report.results}
    assert status["normalisation"] == status["samples_match_log_prob"] == "passed"
    assert status["invertibility"] == "not applicable"  # a mixture is not a flow


def test_one_component_is_a_gaussian():
    model = GMMFamily().build({"shape": [2], "components": 1})
    x = torch.randn(5, 2)
    expected = torch.distributions.MultivariateNormal(
        model.means[0], scale_tril=model.scale_tril()[0]).log_prob(x)
    assert torch.allclose(model.log_prob(x), expected, atol=1e-5)


def test_eight_gaussians_protocol():
    train, test = load_eight_gaussians("train", None), load_eight_gaussians("test", None)
    assert train.shape == test.shape == (20000, 2) and train.dtype == torch.float32
    assert torch.equal(train, load_eight_gaussians("train", None))  # fixed seeds
    assert not torch.equal(train, test)
    radius = train.norm(dim=1)
    assert abs(radius.mean().item() - 2.0) < 0.01


def test_hooks_register_the_dataset_and_valid_entries():
    datasets, entries = [], []
    zoo_register_datasets(datasets.append)
    zoo_register_entries(entries.append)
    assert [d.name for d in datasets] == ["eight-gaussians"]
    for entry in entries:
        GMMFamily().parse_config(entry["config"])  # every entry's config is valid
    assert {e["name"] for e in entries} == {"gmm-moons", "gmm-eight-gaussians"}


def test_training_approaches_the_entropy_of_eight_gaussians():
    import zoo

    torch.manual_seed(0)
    model = zoo.fit("gmm", load_eight_gaussians("train", None),
                    config={"components": 16, "init_spread": 2.0},
                    recipe=zoo.Recipe(steps=300, batch_size=512, lr=0.05, eval_every=300),
                    progress=False)
    with torch.no_grad():
        nll = -model.log_prob(load_eight_gaussians("test", None)).mean().item()
    entropy = math.log(8) + math.log(2 * math.pi * math.e * 0.01)
    assert entropy - 0.02 < nll < entropy + 0.2
