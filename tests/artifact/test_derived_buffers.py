"""Derived buffers: masks, orderings and index lists follow from the config, so an artifact
whose stored copies differ is refused by load and by `zoo verify`, naming the buffer.

The sha256 in config.json does not protect them: whoever rewrites the weights rewrites the
hash too. Each case below first shows that the tampered model is really wrong (its
probabilities do not sum to 1, its density does not integrate to 1), then that zoo refuses it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import faultkit
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from zoo.artifact import io as artifacts
from zoo.artifact.manifest import sha256_file
from zoo.artifact.verify import check
from zoo.cli.commands import cli
from zoo.errors import ArtifactError
from zoo.plugin.family import Family
from zoo.plugin.model import ZooModel, check_continuous
from zoo.plugin.registry import get_family
from zoo.testing.harness import _registered


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def rewrite(path, change) -> None:
    """Change the stored tensors and record the new file's sha256, as an attacker would."""
    weights = path / "model.safetensors"
    tensors = load_file(str(weights))
    change(tensors)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    config = json.loads((path / "config.json").read_text())
    config["weights_sha256"] = sha256_file(weights)
    (path / "config.json").write_text(json.dumps(config))


def masks_to_one(tensors) -> None:
    for key in tensors:
        if key.endswith("mask"):
            tensors[key] = torch.ones_like(tensors[key])


def second_is_first(tensors) -> None:
    tensors["second"] = tensors["first"].clone()


def total_probability(model) -> float:
    """Sum of p(x) over every input of a [1, 2, 2] model with 3 levels."""
    x = torch.cartesian_prod(*[torch.arange(3)] * 4).reshape(-1, 1, 2, 2)
    with torch.no_grad():
        return float(model.log_prob(x).double().exp().sum())


def integral(model) -> float:
    """The density of a 2-d model integrated over [-12, 12]^2 (midpoint rule)."""
    step = 24 / 600
    axis = -12 + step * (torch.arange(600, dtype=torch.float64) + 0.5)
    points = torch.cartesian_prod(axis, axis).float()
    with torch.no_grad():
        return float(model.log_prob(points).double().exp().sum() * step**2)


CASES = {
    # Two masks: a one-mask MADE packs its live weights by the config's mask (the stored
    # mask no longer drives it), an ensemble multiplies by the stored masks.
    "made-masks-set-to-one": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16],
                                       "masks": 2},
                              masks_to_one, "hidden.0.mask", total_probability),
    "realnvp-second-is-first": ("realnvp", {"shape": [2], "couplings": 4, "hidden": 16},
                                second_is_first, "second", integral),
    "pixelcnn-masks-set-to-one": ("pixelcnn", {"shape": [1, 2, 2], "levels": 3,
                                               "variant": "plain", "channels": 8, "layers": 2,
                                               "head_channels": 8},
                                  masks_to_one, "net.first.mask", total_probability),
}


def tampered_artifact(tmp_path, case):
    family, config, change, _, measure = CASES[case]
    torch.manual_seed(0)
    model = get_family(family).build(config)
    with torch.no_grad():  # a trained model is not the identity (a fresh flow is)
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    path = artifacts.save(model, tmp_path / case)
    rewrite(path, change)
    # What a load that trusted the buffers would give: not a distribution.
    trusting = get_family(family).build(config)
    trusting.load_state_dict(load_file(str(path / "model.safetensors")))
    mass = measure(trusting.eval())
    assert abs(mass - 1) > 0.02, f"{case}: the tampered model still sums to {mass}"
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_a_rewritten_derived_buffer_is_refused_by_load_and_verify(case, tmp_path, cli_runner):
    path = tampered_artifact(tmp_path, case)
    buffer = CASES[case][3]
    with pytest.raises(ArtifactError) as info:
        artifacts.load(path)
    message = str(info.value)
    assert f"buffer {buffer!r}" in message and str(path / "model.safetensors") in message
    assert "\n" not in message

    problems = check(path)
    assert len(problems) == 1 and f"buffer {buffer!r}" in problems[0]
    result = cli_runner.invoke(cli, ["verify", str(path)])
    assert result.exit_code == 1 and f"buffer {buffer!r}" in result.output
    assert result.output.startswith("BAD")
    if case == list(CASES)[-1]:
        faultkit.record("integrity", "a derived buffer rewritten, sha256 rewritten to match "
                        "(MADE masks set to one, RealNVP `second = first`, PixelCNN masks "
                        "set to one)", len(CASES), "load refused naming the buffer; `zoo "
                        "verify` BAD, exit 1", "untouched (verify writes nothing)")


def test_untampered_artifacts_still_load(tmp_path):
    for case, (family, config, *_rest) in CASES.items():
        model = get_family(family).build(config)
        loaded = artifacts.load(artifacts.save(model, tmp_path / case))
        for (name, a), b in zip(model.named_buffers(), loaded.buffers()):
            assert torch.equal(a, b), name


# --- a third-party family: every buffer is checked unless declared as state -----------------


@dataclass(frozen=True)
class CountingConfig:
    shape: tuple[int, ...]


class Counting(ZooModel):
    """A standard normal with a learned-state buffer (a count) and a derived one (a scale)."""

    def __init__(self, config):
        super().__init__()
        self.dim = config.shape[0]
        self.shift = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("seen", torch.zeros(()))  # changes in training: state
        self.register_buffer("scale", torch.ones(self.dim))  # follows from the config

    def log_prob(self, x):
        x = check_continuous(x, self.dim)
        z = (x - self.shift) / self.scale
        return -0.5 * (z * z).sum(1) - self.scale.log().sum() - 0.9189385 * self.dim


class CountingFamily(Family):
    name = "counting"
    data_kind = "continuous"
    Config = CountingConfig
    state_buffers = ("seen",)

    def create(self, config):
        return Counting(config)


def test_declared_state_buffers_may_differ_and_the_others_may_not(tmp_path):
    family = CountingFamily()
    model = family.build({"shape": [2]})
    model.seen.fill_(41.0)
    with _registered(family):
        loaded = artifacts.load(artifacts.save(model, tmp_path / "state"))
        assert float(loaded.seen) == 41.0

        model.scale.fill_(2.0)
        path = artifacts.save(model, tmp_path / "derived")
        with pytest.raises(ArtifactError, match="buffer 'scale'"):
            artifacts.load(path)

        undeclared = type("Undeclared", (CountingFamily,), {"state_buffers": ()})()
    with _registered(undeclared):
        with pytest.raises(ArtifactError, match="buffer 'seen'.*Family.state_buffers"):
            artifacts.load(tmp_path / "state")
