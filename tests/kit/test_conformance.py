"""Every first-party family passes the conformance kit (zoo.testing), on tiny configs.

One test per (family config, check). The configs cover each family's main options; every
family that genzoo's own entry points register must appear here, so a new first-party
family cannot skip the kit.
"""

from __future__ import annotations

from importlib import metadata

import pytest
import torch

from zoo.api import get_family
from zoo.errors import NotFoundError
from zoo.testing import family_checks

# Tiny on purpose: discrete normalisation enumerates levels**positions inputs, and the kit
# should take a second or two per config so that it runs in every test run.
CONFIGS: dict[str, list[dict]] = {
    "realnvp": [
        {"shape": [2], "couplings": 4, "hidden": 16},
        {"shape": [3], "couplings": 3, "hidden": 8, "masks": "random", "activation": "tanh"},
        # Spline couplings; a narrow bound so that the kit's data lies both inside the spline
        # and in its identity tails.
        {"shape": [2], "couplings": 3, "hidden": 16, "coupling": "spline", "bins": 5,
         "spline_bound": 1.5},
        {"shape": [3], "couplings": 2, "hidden": 8, "coupling": "spline", "masks": "random"},
    ],
    "made": [
        {"shape": [1, 2, 2], "levels": 3, "hidden": [16]},
        {"shape": [1, 2, 2], "levels": 3, "hidden": [16, 16], "masks": 2, "ordering": "random",
         "inputs": "embedding", "embedding_dim": 4, "direct": True},
        {"shape": [1, 1, 5], "levels": 3, "hidden": [12], "output_rank": 2, "dropout": 0.2},
        {"shape": [1, 2, 3], "levels": 2, "hidden": [12], "head": "bernoulli", "direct": True},
        {"shape": [1, 2, 2], "levels": 2, "hidden": [8, 8], "head": "bernoulli", "masks": 2,
         "ordering": "random", "inputs": "embedding", "embedding_dim": 3},
    ],
    "pixelcnn": [
        {"shape": [1, 2, 2], "levels": 3, "variant": "plain", "channels": 8, "layers": 1,
         "head_channels": 8, "first_kernel": 3},
        {"shape": [1, 2, 2], "levels": 3, "variant": "gated", "channels": 8, "layers": 2,
         "head_channels": 8, "inputs": "scaled"},
        {"shape": [1, 3, 2], "levels": 2, "variant": "gated", "channels": 4, "layers": 1,
         "head_channels": 4, "embedding_dim": 3},
    ],
}


def first_party_families() -> set[str]:
    """The entry-point plugins of the genzoo distribution itself."""
    return {ep.name for ep in metadata.entry_points(group="zoo")
            if ep.dist is not None and ep.dist.metadata["Name"] == "genzoo"}


def test_every_first_party_family_is_checked():
    assert first_party_families() <= set(CONFIGS)


def conformance_params():
    for family, configs in CONFIGS.items():
        try:
            get_family(family)
        except NotFoundError as exc:  # one clear failure instead of a collection error
            yield pytest.param(exc, id=f"{family}-not-installed")
            continue
        for i, config in enumerate(configs):
            for check in family_checks(family, config):
                yield pytest.param(check, id=f"{family}-{i}-{check}")


pytestmark = pytest.mark.usefixtures("one_thread")  # see conftest.py


@pytest.mark.parametrize("check", list(conformance_params()))
def test_conformance(check):
    if isinstance(check, Exception):
        pytest.fail(f"a first-party family is not installed: {check}")
    check()


# --- the kit's power: a sampler blind to context must fail it --------------------------------


def blind_sample(model, n, *, temperature=1.0, generator=None, given=None, mask=None):
    """Draw every position from the logits of an all-zero input: causal per position (those
    logits see only earlier positions, all zero), but blind to the values actually drawn."""
    from zoo.plugin.model import check_completion, check_sampling

    check_sampling(n, temperature)
    shape, levels = tuple(model.config.shape), model.config.levels
    completion = check_completion(given, mask, n, shape, levels)
    members = getattr(model, "ensemble_size", 1)
    zeros = torch.zeros(1, *shape, dtype=torch.long)
    with torch.no_grad():
        logits = torch.stack([
            (model.conditional_logits(zeros, k) if members > 1 else
             model.conditional_logits(zeros)).reshape(levels, -1).t()
            for k in range(members)])  # [K, D, C]
    member = torch.randint(members, (n,), generator=generator)
    probs = torch.softmax(logits[member] / temperature, -1)  # [n, D, C]
    x = torch.multinomial(probs.reshape(-1, levels), 1, generator=generator).reshape(n, *shape)
    if completion is not None:
        x = torch.where(completion[1], completion[0], x)
    return x


def blind(family_name: str):
    """The installed family, its models' sampler replaced by ``blind_sample``."""
    installed = type(get_family(family_name))

    class Blind(installed):
        def create(self, config):
            model = super().create(config)
            model.sample = blind_sample.__get__(model)
            return model

    return Blind()


@pytest.mark.parametrize("family, config", [
    (family, config) for family in ("made", "pixelcnn") for config in [None, *CONFIGS[family]]
], ids=lambda v: v if isinstance(v, str) else ("default" if v is None else
                                                 "-".join(f"{k}={v[k]}" for k in v
                                                          if k not in ("shape", "levels"))))
def test_a_sampler_blind_to_context_fails_the_kit(family, config):
    checks = {c.name: c for c in family_checks(blind(family), config)}
    result = checks["samples_match_log_prob"].run()
    assert result.status == "failed", result
    assert "do not follow the enumerated probabilities" in result.message
    if (config or {}).get("masks", 1) == 1:  # ensembles: the kit checks known values only
        result = checks["completion"].run()
        assert result.status == "failed", result
        assert "do not follow the model's conditional distribution" in result.message
