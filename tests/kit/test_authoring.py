"""The kit's checks for what plugin authors really get wrong (issue 15), each against a
deliberately broken family that the kit passed before these checks existed.

``Gauss`` is a correct family (a diagonal Gaussian); every broken family below changes one
thing about it, and must fail in the check about that thing, with a message naming the
mistake.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest
import torch
from torch import Tensor, nn

from zoo.config import bounds
from zoo.plugin.family import Family
from zoo.plugin.model import ZooModel, check_continuous, check_sampling
from zoo.testing import CHECKS, check_family

LOG_2PI = math.log(2 * math.pi)
NEW_CHECKS = ["log_prob_keeps_input", "samples_detached", "temperature", "config_keys",
              "state_after_reload", "normaliser_in_any_dimension"]


@dataclass(frozen=True)
class GaussConfig:
    shape: tuple[int, ...]
    init_scale: float = field(default=1.0, metadata=bounds(0.1, 10.0))
    dropout: float = field(default=0.0, metadata=bounds(0.0, 0.9))  # used in training only

    def validate(self) -> None:
        if len(self.shape) != 1 or not 1 <= self.shape[0] <= 64:
            raise ValueError(f"shape: expected [D] with 1 <= D <= 64, got {list(self.shape)}")


class Gauss(ZooModel):
    """A Gaussian with a diagonal covariance: ``x = shift + exp(log_scale) * z``."""

    def __init__(self, config: GaussConfig):
        super().__init__()
        self.dim = config.shape[0]
        self.shift = nn.Parameter(torch.zeros(self.dim))
        self.log_scale = nn.Parameter(torch.full((self.dim,), math.log(config.init_scale)))

    def normal_log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * LOG_2PI

    def log_prob(self, x: Tensor) -> Tensor:
        x = check_continuous(x, self.dim)
        z = (x - self.shift) * torch.exp(-self.log_scale)
        return self.normal_log_prob(z) - self.log_scale.sum()

    def draw(self, n, temperature, generator) -> Tensor:
        noise = torch.randn(n, self.dim, generator=generator)
        return self.shift + torch.exp(self.log_scale) * noise * temperature

    @torch.no_grad()
    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("a Gaussian cannot complete partly known inputs here")
        return self.draw(n, temperature, generator)


class GaussFamily(Family):
    name = "tiny-gauss"
    data_kind = "continuous"
    Config = GaussConfig
    model_class = Gauss

    def inert_config_keys(self, config):
        return {"dropout": "used in training only"}

    def create(self, config):
        return self.model_class(config)


def family(model_class, base=GaussFamily, **attributes):
    return type(f"{model_class.__name__}Family", (base,),
                {"model_class": model_class, **attributes})()


def failed(report, check):
    result = report.result(check)
    assert result.status == "failed", report.summary()
    return result.message


def test_the_correct_family_passes_every_check_including_the_new_ones():
    report = check_family(GaussFamily(), {"shape": [2], "init_scale": 2.0})
    assert report.passed, report.summary()
    for name in NEW_CHECKS:
        assert report.result(name).status == "passed", report.summary()
    assert set(NEW_CHECKS) <= set(CHECKS)
    assert "declared without effect: dropout" in report.result("config_keys").message


# --- create() ignores config keys ----------------------------------------------------------------

class IgnoresConfig(GaussFamily):
    def create(self, config):
        return Gauss(GaussConfig(shape=config.shape))  # the defaults, not the config


def test_create_ignoring_a_config_key_fails_config_keys():
    report = check_family(IgnoresConfig(), raise_on_failure=False)
    message = failed(report, "config_keys")
    assert "create() ignores config key(s) 'init_scale'" in message
    assert "dropout" not in message  # declared by the family as training-only
    assert [r.check for r in report.failures] == ["config_keys"]


def test_an_undeclared_training_only_key_is_named():
    report = check_family(family(Gauss, inert_config_keys=lambda self, config: {}),
                          raise_on_failure=False)
    message = failed(report, "config_keys")
    assert "'dropout'" in message and "inert_config_keys" in message


# --- sample() ignores temperature ----------------------------------------------------------------

class IgnoresTemperature(Gauss):
    def draw(self, n, temperature, generator):
        return super().draw(n, 1.0, generator)  # validated by check_sampling, then ignored


class BackwardTemperature(Gauss):
    def draw(self, n, temperature, generator):
        return super().draw(n, 1.0 / temperature, generator)


def test_a_sampler_that_ignores_temperature_fails():
    report = check_family(family(IgnoresTemperature), raise_on_failure=False)
    assert "sample() ignores temperature" in failed(report, "temperature")
    assert report.result("sample").status == "passed"  # what the kit said before


def test_a_temperature_that_works_the_wrong_way_fails():
    report = check_family(family(BackwardTemperature), raise_on_failure=False)
    assert "temperature works the wrong way round" in failed(report, "temperature")


# --- sample() returns tensors that require grad --------------------------------------------------

class SamplesWithGrad(Gauss):
    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        check_sampling(n, temperature)  # no @torch.no_grad(): the result carries a graph
        return self.draw(n, temperature, generator)


def test_samples_that_require_grad_fail():
    report = check_family(family(SamplesWithGrad), raise_on_failure=False)
    assert "sample() returned a tensor that requires grad" in failed(report, "samples_detached")


# --- state that save -> load loses ---------------------------------------------------------------

class DataInit(Gauss):
    """Centres the data on the mean of the first batch it scores, kept in a non-persistent buffer."""

    def __init__(self, config):
        super().__init__(config)
        self.register_buffer("offset", torch.zeros(self.dim), persistent=False)
        self.initialised = False

    def log_prob(self, x):
        x = check_continuous(x, self.dim)
        if not self.initialised:
            self.offset.copy_(x.detach().mean(0))
            self.initialised = True
        return super().log_prob(x - self.offset)

    def draw(self, n, temperature, generator):
        return super().draw(n, temperature, generator) + self.offset


def test_data_dependent_state_lost_by_save_load_fails():
    report = check_family(family(DataInit), raise_on_failure=False)
    message = failed(report, "state_after_reload")
    assert "persistent=False" in message and "data-dependent initialisation" in message
    assert report.result("save_load").status == "passed"  # the same data rebuilds the state


# --- a constant that is right in one dimension only ----------------------------------------------

class TwoDimensionalConstant(Gauss):
    def normal_log_prob(self, z):
        return -0.5 * (z * z).sum(1) - LOG_2PI  # right for D = 2 only


def test_a_constant_right_only_in_two_dimensions_fails():
    report = check_family(family(TwoDimensionalConstant), raise_on_failure=False)
    assert report.result("normalisation").status == "passed"  # D = 2: the grid cannot see it
    message = failed(report, "normaliser_in_any_dimension")
    assert "shape [5] (D = 5)" in message and "D/2 * log(2*pi)" in message


def test_the_normaliser_is_checked_in_the_configs_own_dimension_too():
    report = check_family(family(TwoDimensionalConstant), {"shape": [4]}, raise_on_failure=False)
    assert "shape [4] (D = 4)" in failed(report, "normaliser_in_any_dimension")


# --- log_prob changes its input ------------------------------------------------------------------

class MutatesInput(Gauss):
    def log_prob(self, x):
        x = check_continuous(x, self.dim)
        x -= self.shift.detach()  # in place: the caller's tensor changes
        return self.normal_log_prob(x * torch.exp(-self.log_scale)) - self.log_scale.sum()


def test_log_prob_that_changes_its_input_is_named():
    report = check_family(family(MutatesInput), raise_on_failure=False)
    assert "log_prob changed its input" in failed(report, "log_prob_keeps_input")


@pytest.mark.parametrize("broken", [IgnoresConfig(), family(IgnoresTemperature),
                                    family(SamplesWithGrad), family(DataInit),
                                    family(TwoDimensionalConstant), family(MutatesInput)],
                         ids=lambda f: type(f).__name__)
def test_every_broken_family_fails_the_kit(broken):
    assert not check_family(broken, raise_on_failure=False).passed



class TemperatureMovesOnlyTheNoise(Gauss):
    """The temperature changes which samples come out (it advances the generator) but not
    their distribution: different samples, so the "ignored" check cannot see it."""

    def draw(self, n, temperature, generator):
        if temperature != 1.0:
            torch.randn(int(10 * temperature) + 1, generator=generator)
        return super().draw(n, 1.0, generator)


def test_a_temperature_that_leaves_the_distribution_alone_fails():
    report = check_family(family(TemperatureMovesOnlyTheNoise), raise_on_failure=False)
    assert "does not scale the spread by the temperature" in failed(report, "temperature")
