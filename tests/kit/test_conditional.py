"""The kit's conditional checks (zoo.testing.conditional) against broken conditional MADEs.

Each broken variant has one bug a conditional family could have; the kit must fail it in
the check about that bug, with a message that says what is wrong, while the real MADE they
derive from passes (tests/kit/test_conformance.py runs every first-party family).
"""

from __future__ import annotations

import pytest

from zoo.plugin.registry import get_family
from zoo.testing import family_checks
from zoo.testing.conditional import CONTEXT_SAMPLES, MIN_Z

pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py

CONFIG = {"shape": [1, 2, 2], "levels": 3, "hidden": [16]}


def variant(name: str, **methods):
    """The installed MADE family whose models are a subclass with ``methods`` replaced."""
    from zoo_made.model import MADE

    model_class = type(f"MADE{name}", (MADE,), methods)

    class Variant(type(get_family("made"))):
        def create(self, config):
            return model_class(config)

    return Variant()


def _ignores_context_in_log_prob(self, x, context=None):
    from zoo_made.model import MADE

    return MADE.log_prob_checked(self, x)  # the bug: the context never reaches the networks


def _draws_without_context(self, n, temperature, generator, known, *, fast, context=None):
    from zoo_made.model import MADE

    return MADE.draw(self, n, temperature, generator, known, fast=fast)  # the bug


def _leaky_outputs(self, flat, k, terms=None):
    """The context's output term scaled by the mean of the whole input, added after the
    masked layers: position d's logits then see x_d and every later position."""
    from zoo_made.model import MADE

    out = MADE.masked_outputs(self, flat, k, terms)
    if terms is None:
        return out
    return out + terms[1] * flat.mean(1, keepdim=True)


def run(family, check):
    return {c.name: c for c in family_checks(family, CONFIG)}[check].run()


def test_a_model_that_ignores_its_context_fails_context_matters():
    result = run(variant("IgnoresContext", log_prob_checked=_ignores_context_in_log_prob),
                 "context_matters")
    assert result.status == "failed", result
    assert "same under every context tried" in result.message
    assert "ignores its context" in result.message


def test_a_sampler_that_ignores_the_context_fails_context_samples():
    family = variant("BlindSampler", draw=_draws_without_context)
    result = run(family, "context_samples")
    assert result.status == "failed", result
    assert "score no higher under it than under the other contexts" in result.message
    # ... and its completions ignore the context too (the ancestral path uses draw)
    result = run(family, "context_completion")
    assert result.status == "failed", result
    assert "do not follow the model's conditional distribution" in result.message


def test_a_context_applied_after_the_masks_that_leaks_fails_context_causality():
    family = variant("Leaky", masked_outputs=_leaky_outputs)
    result = run(family, "context_causality")
    assert result.status == "failed", result
    assert "depend on the input at position" in result.message
    assert result.message.startswith("label-conditional model, label 0:")
    # Without a context the leak is off: only the check with a context can see it.
    assert run(family, "causality").status == "passed"


def test_a_fast_sampler_that_applies_the_context_differently_fails_context_samplers():
    from zoo_made.model import MADE

    def draw(self, n, temperature, generator, known, *, fast, context=None):
        if fast and context is not None and context.dim() == 1:
            context = (context + 1) % 3  # the bug: the fast path shifts the labels
        return MADE.draw(self, n, temperature, generator, known, fast=fast, context=context)

    result = run(variant("ShiftedFast", draw=draw), "context_samplers")
    assert result.status == "failed", result
    assert "sample() and sample_naive() from the same generator state differ" in result.message


def test_the_sample_test_has_power_both_ways():
    """A real model clears MIN_Z by a wide margin; a sampler that ignores the context sits
    near z = 0 under every seed tried (the statistic has mean exactly 0 for it)."""
    real = {c.name: c for c in family_checks("made", CONFIG)}["context_samples"].run()
    assert real.status == "passed", real
    z = [float(part.split("z = ")[1].rstrip(")")) for part in real.message.split("; ")]
    assert min(z) > 3 * MIN_Z
    for seed in range(3):
        blind = {c.name: c for c in family_checks(variant("Blind", draw=_draws_without_context),
                                                   CONFIG, seed=seed)}["context_samples"].run()
        assert blind.status == "failed", blind
        z_blind = float(blind.message.split("z = ")[1].split(" ")[0])
        assert abs(z_blind) < MIN_Z - 1, (seed, blind.message)
    assert CONTEXT_SAMPLES >= 1000


def test_an_unconditional_family_skips_the_context_checks():
    class Unconditional(type(get_family("made"))):
        contexts = ()

    for check in family_checks(Unconditional(), CONFIG):
        if check.name.startswith("context_"):
            result = check.run()
            assert result.status == "not applicable", result
            assert "declares no contexts" in result.message
