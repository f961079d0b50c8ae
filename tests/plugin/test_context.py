"""The context contract every ZooModel keeps (zoo.plugin.context, zoo.plugin.model): a
conditional model refuses a call without its context, an unconditional one refuses a
context, a label model without a label gives the exact marginal and draws the label from
its class frequencies, and completion uses the context."""

from __future__ import annotations

import itertools

import pytest
import torch

from zoo.errors import ConfigError
from zoo.plugin.registry import get_family

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "made": {"shape": [1, 2, 2], "levels": 2, "hidden": [16]},
    "pixelcnn": {"shape": [1, 2, 2], "levels": 2, "channels": 4, "layers": 1,
                 "first_kernel": 3, "head_channels": 4},
}


def perturbed(family: str, config: dict, seed: int = 0, std: float = 0.7):
    torch.manual_seed(seed)
    model = get_family(family).build(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(torch.randn_like(p) * std)
    return model.eval()


def every_image(config: dict) -> torch.Tensor:
    n = 1
    for s in config["shape"]:
        n *= s
    return torch.tensor(list(itertools.product(range(config["levels"]), repeat=n))
                        ).view(-1, *config["shape"])


@pytest.mark.parametrize("family", sorted(TINY))
def test_a_label_model_sums_to_one_for_each_label_and_its_marginal_too(family):
    config = {**TINY[family], "classes": ["a", "b", "c"]}
    model = perturbed(family, config)
    with torch.no_grad():
        model.context_input.log_prior.copy_(torch.log(torch.tensor([0.5, 0.3, 0.2])))
        xs = every_image(config)
        totals = [torch.logsumexp(model.log_prob(xs, context=k), 0).item() for k in range(3)]
        marginal = model.log_prob(xs)
        by_hand = torch.logsumexp(torch.stack(
            [model.log_prob(xs, context=k) + torch.log(torch.tensor([0.5, 0.3, 0.2]))[k]
             for k in range(3)]), 0)
    assert totals == pytest.approx([0, 0, 0], abs=1e-5)
    assert torch.logsumexp(marginal, 0).item() == pytest.approx(0, abs=1e-5)
    torch.testing.assert_close(marginal, by_hand)
    # The label changes the distribution (the perturbed context weights are not ignored).
    assert not torch.allclose(model.log_prob(xs, context=0), model.log_prob(xs, context=1))


@pytest.mark.parametrize("family", sorted(TINY))
@pytest.mark.parametrize("context", [{"classes": ["a", "b"]}, {"context": ["u", "v"]}])
def test_the_fast_sampler_equals_the_naive_one_for_every_context(family, context):
    model = perturbed(family, {**TINY[family], "shape": [1, 3, 4], "levels": 3, **context})
    contexts = ([0, 1] if "classes" in context
                else [torch.tensor([0.5, -1.0]), torch.randn(40, 2)])
    for c in contexts:
        a = model.sample(40, context=c, generator=torch.Generator().manual_seed(3))
        b = model.sample_naive(40, context=c, generator=torch.Generator().manual_seed(3))
        assert torch.equal(a, b)


def test_samples_score_higher_under_their_own_label():
    config = {**TINY["made"], "shape": [1, 3, 3], "classes": ["a", "b"]}
    model = perturbed("made", config)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for own, other in ((0, 1), (1, 0)):
            x = model.sample(400, context=own, generator=g)
            gain = (model.log_prob(x, context=own) - model.log_prob(x, context=other)).mean()
            assert gain > 0.05  # the expected gain is a KL divergence: positive


@pytest.mark.parametrize("family", sorted(TINY))
def test_completion_uses_the_context(family):
    config = {**TINY[family], "shape": [1, 2, 3], "levels": 3, "classes": ["a", "b"]}
    model = perturbed(family, config, seed=1)
    given = torch.zeros(1, 2, 3, dtype=torch.long)
    for mask_rows in ((0,), (1,)):  # known first in raster order (exact), or last (a chain)
        mask = torch.zeros(1, 2, 3, dtype=torch.bool)
        mask[0, list(mask_rows)] = True
        draws = {k: model.sample(3000, context=k, given=given, mask=mask,
                                 generator=torch.Generator().manual_seed(k))
                 for k in (0, 1)}
        xs = every_image(config)
        xs = xs[(xs[:, mask] == 0).all(1)]  # the images that agree with what is known
        for k in (0, 1):
            with torch.no_grad():
                exact = torch.softmax(model.log_prob(xs, context=k), 0)
            flat = xs.reshape(len(xs), -1)
            drawn = draws[k].reshape(len(draws[k]), -1)
            freq = torch.stack([(drawn == row).all(1).double().mean() for row in flat])
            assert (freq - exact.double()).abs().max() < 0.05, (family, mask_rows, k)
        assert not torch.equal(draws[0], draws[1])


def test_a_label_model_without_a_label_draws_it_from_the_class_frequencies():
    model = perturbed("made", {**TINY["made"], "classes": ["a", "b"]})
    with torch.no_grad():
        model.context_input.log_prior.copy_(torch.log(torch.tensor([0.9, 0.1])))
        # Where the two labels' models differ, the draw follows p(y): compare with p(x).
        x = model.sample(20000, generator=torch.Generator().manual_seed(0))
        xs = every_image(TINY["made"])
        exact = model.log_prob(xs).exp()
    flat, drawn = xs.reshape(len(xs), -1), x.reshape(len(x), -1)
    freq = torch.stack([(drawn == row).all(1).float().mean() for row in flat])
    assert (freq - exact).abs().max() < 0.02


def test_vector_conditional_flow_is_invertible_and_its_context_matters():
    model = perturbed("realnvp", {"shape": [3], "context": ["u", "v"], "coupling": "spline"},
                      std=0.05)
    c = torch.randn(50, 2)
    with torch.no_grad():
        x = model.sample(50, context=c, generator=torch.Generator().manual_seed(0))
        z, _ = model(x, context=c)
        assert torch.allclose(model.invert(z, context=c), x, atol=1e-4)
        assert not torch.allclose(model.log_prob(x, context=c),
                                  model.log_prob(x, context=c + 1.0))


def test_a_one_column_conditional_flow_integrates_to_one():
    """p(y | x) of a single column: the grid integral is 1 for every context."""
    model = perturbed("realnvp", {"shape": [1], "context": ["x"]}, std=0.05)
    grid = torch.linspace(-25, 25, 20001).unsqueeze(1)
    step = float(grid[1] - grid[0])
    with torch.no_grad():
        for x in (-1.0, 0.0, 2.0):
            mass = model.log_prob(grid, context=[x]).exp().sum().item() * step
            assert mass == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("call, message", [
    (lambda m, x: m.log_prob(x, context=5), "not a class of this model"),
    (lambda m, x: m.log_prob(x, context="dog"), "not a class of this model"),
    (lambda m, x: m.log_prob(x, context=torch.tensor([0.5])), "must be integers"),
    (lambda m, x: m.log_prob(x, context=torch.tensor([0, 1, 0])), "3 labels for 4 examples"),
    (lambda m, x: m.sample(2, context=-1), "not a class"),
])
def test_a_bad_label_is_one_clear_line(call, message):
    model = perturbed("made", {**TINY["made"], "classes": ["a", "b"]})
    with pytest.raises(ValueError, match=message):
        call(model, torch.zeros(4, 1, 2, 2, dtype=torch.long))


def test_an_unconditional_model_refuses_a_context_and_a_vector_model_needs_one():
    x = torch.zeros(4, 1, 2, 2, dtype=torch.long)
    plain = perturbed("made", TINY["made"])
    with pytest.raises(ValueError, match="unconditional"):
        plain.log_prob(x, context=1)
    with pytest.raises(ValueError, match="unconditional"):
        plain.sample(2, context=1)
    vector = perturbed("made", {**TINY["made"], "context": ["u", "v"]})
    with pytest.raises(ValueError, match="pass a context"):
        vector.log_prob(x)
    with pytest.raises(ValueError, match="this model takes 2"):
        vector.sample(2, context=[1.0, 2.0, 3.0])


def test_context_spec_follows_the_config_it_is_made_from():
    """The spec is made once per config object (it is read on every log_prob): a model given
    another config reads that one's."""
    from zoo.plugin.context import ContextSpec

    model = perturbed("made", TINY["made"])
    assert not model.context_spec and model.context_spec is model.context_spec
    labelled = get_family("made").parse_config({**TINY["made"], "classes": ["a", "b"]})
    model.config = labelled
    assert model.context_spec == ContextSpec("label", ("a", "b"))


@pytest.mark.parametrize("keys, message", [
    ({"classes": ["a"]}, "at least two classes"),
    ({"classes": ["a", "a"]}, "named twice"),
    ({"classes": ["a", "b"], "context": ["u"]}, "one kind of context"),
])
def test_bad_context_keys_are_refused_before_building(keys, message):
    with pytest.raises(ConfigError, match=message):
        get_family("made").parse_config({**TINY["made"], **keys})


def test_sizes_count_the_context_parameters():
    for family, config in TINY.items():
        for keys in ({"classes": ["a", "b", "c"]}, {"context": ["u", "v"]}):
            model = get_family(family).build({**config, **keys})
            counted = (model.config.sizes()[0] if family == "made"
                       else model.config.parameter_count())
            held = sum(p.numel() for p in model.parameters())
            if family == "made":  # the dense layout counts the weights the mask cuts off
                assert counted > held
            else:
                assert counted == held


@pytest.mark.slow
def test_a_conditional_training_step_compiles_as_one_graph():
    """The trainer compiles long runs: the context checks must not break the graph (a
    data-dependent branch would split it, and print torch's warnings to the user)."""
    from zoo.training.distributed import NegLogLikelihood

    model = get_family("made").build({**TINY["made"], "classes": ["a", "b"]})
    objective = torch.compile(NegLogLikelihood(model), fullgraph=True)
    x = torch.randint(0, 2, (8, 1, 2, 2))
    assert torch.isfinite(objective(x, torch.randint(0, 2, (8,))))
