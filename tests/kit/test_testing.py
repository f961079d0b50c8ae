"""The conformance kit against small correct families and deliberately broken ones.

Every broken family below has one bug a real family could have; the kit must fail it in the
check that is about that bug, with a message that says what is wrong, and pass the correct
families they are derived from.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.config import bounds
from zoo.infer.completion import complete
from zoo.plugin import registry
from zoo.plugin.family import Family, check_shape_field
from zoo.plugin.model import (
    ZooModel,
    check_completion,
    check_continuous,
    check_discrete,
    check_sampling,
)
from zoo.testing import (
    CHECKS,
    ConformanceError,
    check_family,
    default_config,
    family_checks,
    main,
)

# --- a correct discrete autoregressive family -----------------------------------------------


@dataclass(frozen=True)
class ARConfig:
    shape: tuple[int, ...]
    levels: int = field(metadata=bounds(2, 64))
    members: int = field(default=1, metadata=bounds(1, 8))

    def validate(self) -> None:
        check_shape_field(self.shape, max_elements=4096)


class TinyAR(ZooModel):
    """A fully visible autoregressive model: position d's logits are a masked linear function
    of the one-hot values before it, in a random order (a buffer). ``members > 1`` is a
    uniform ensemble of such models, each with its own order."""

    leak = False  # subclasses flip these to break one thing each
    orders_are_buffers = True
    orders_from_config = True  # drawn from a seeded generator: the config fixes them

    def __init__(self, config: ARConfig):
        super().__init__()
        self.shape, self.levels = tuple(config.shape), config.levels
        d, c, k = math.prod(self.shape), config.levels, config.members
        self.dims, self.ensemble_size = d, k
        g = torch.Generator().manual_seed(0) if self.orders_from_config else None
        orders = torch.stack([torch.randperm(d, generator=g) for _ in range(k)])
        ranks = torch.argsort(orders, dim=1)
        sees = ranks[:, None, :] <= ranks[:, :, None] if self.leak else (
            ranks[:, None, :] < ranks[:, :, None])
        if self.orders_are_buffers:
            self.register_buffer("orders", orders)
            self.register_buffer("mask", sees.float())
        else:  # the bug: re-drawn at every build, so a loaded model is another model
            self.orders, self.mask = orders, sees.float()
        self.weight = nn.Parameter(torch.randn(k, d, c, d, c) * 0.3)
        self.bias = nn.Parameter(torch.randn(k, d, c) * 0.3)

    def order(self, k: int = 0) -> Tensor:
        return self.orders[k]

    def conditional_logits(self, x: Tensor, k: int = 0) -> Tensor:
        h = x if x.is_floating_point() else F.one_hot(x, self.levels).movedim(-1, 1).float()
        h = h.reshape(len(h), self.levels, self.dims)  # [B, C, D]
        weight = self.weight[k] * self.mask[k][:, None, :, None]  # [D, C, D', C']
        out = torch.einsum("dcef,bfe->bcd", weight, h) + self.bias[k].t()
        return out.reshape(len(h), self.levels, *self.shape)

    def member_log_probs(self, x: Tensor) -> Tensor:
        logp = [F.log_softmax(self.conditional_logits(x, k), 1) for k in range(self.ensemble_size)]
        return torch.stack([lp.gather(1, x.unsqueeze(1)).reshape(len(x), -1).sum(1) for lp in logp])

    def log_prob(self, x: Tensor) -> Tensor:
        x = check_discrete(x, self.shape, self.levels)
        return torch.logsumexp(self.member_log_probs(x), 0) - math.log(self.ensemble_size)

    @torch.no_grad()
    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        check_sampling(n, temperature)
        if given is None and mask is None:
            return self.clamp_and_draw(n, None, None, temperature, generator)
        return complete(self, given, mask, n, temperature=temperature, generator=generator,
                        ancestral=self.clamp_and_draw).samples

    @torch.no_grad()
    def clamp_and_draw(self, n, given, mask, temperature, generator):
        """Draw in order with known values clamped: exact only for a known prefix."""
        completion = check_completion(given, mask, n, self.shape, self.levels)
        x = torch.zeros(n, self.dims, dtype=torch.long)
        known = torch.zeros(n, self.dims, dtype=torch.bool)
        if completion is not None:
            known = completion[1].reshape(n, -1)
            x = torch.where(known, completion[0].reshape(n, -1), x)
        member = torch.multinomial(torch.ones(self.ensemble_size), n, replacement=True,
                                   generator=generator)
        for t in range(self.dims):
            for k in range(self.ensemble_size):
                rows = member == k
                d = int(self.orders[k][t])
                logits = self.conditional_logits(x[rows].reshape(-1, *self.shape), k).reshape(
                    -1, self.levels, self.dims)[:, :, d]
                drawn = self.draw(logits / temperature, generator)
                x[rows, d] = torch.where(known[rows, d], x[rows, d], drawn)
        return x.reshape(n, *self.shape)

    def draw(self, logits: Tensor, generator) -> Tensor:
        if len(logits) == 0:
            return torch.zeros(0, dtype=torch.long)
        return torch.multinomial(torch.softmax(logits, 1), 1, generator=generator).squeeze(1)


class ARFamily(Family):
    name = "tiny-ar"
    data_kind = "discrete"
    Config = ARConfig
    model_class = TinyAR

    def create(self, config):
        return self.model_class(config)


# --- a correct continuous flow --------------------------------------------------------------


@dataclass(frozen=True)
class FlowConfig:
    shape: tuple[int, ...]

    def validate(self) -> None:
        if len(self.shape) != 1 or not 1 <= self.shape[0] <= 64:
            raise ValueError(f"shape: expected [D] with 1 <= D <= 64, got {list(self.shape)}")


class LinearFlow(ZooModel):
    """``z = A x + b`` with ``A`` lower-triangular, positive diagonal; a standard-normal base."""

    def __init__(self, config: FlowConfig):
        super().__init__()
        self.dim = config.shape[0]
        self.lower = nn.Parameter(torch.zeros(self.dim, self.dim))
        self.log_diag = nn.Parameter(torch.zeros(self.dim))
        self.shift = nn.Parameter(torch.zeros(self.dim))

    def matrix(self) -> Tensor:
        return torch.tril(self.lower, -1) + torch.diag(self.log_diag.exp())

    def log_det(self, batch: int) -> Tensor:
        return self.log_diag.sum().expand(batch)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return x @ self.matrix().t() + self.shift, self.log_det(len(x))

    def invert(self, z: Tensor) -> Tensor:
        rhs = (z - self.shift).t()
        return torch.linalg.solve_triangular(self.matrix(), rhs, upper=False).t()

    def log_prob(self, x: Tensor) -> Tensor:
        check_continuous(x, self.dim)
        z, logdet = self(x)
        return -0.5 * (z * z).sum(1) - 0.5 * self.dim * math.log(2 * math.pi) + logdet

    @torch.no_grad()
    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("a linear flow cannot complete partly known inputs")
        return self.invert(torch.randn(n, self.dim, generator=generator) * temperature)


class FlowFamily(Family):
    name = "tiny-flow"
    data_kind = "continuous"
    Config = FlowConfig
    model_class = LinearFlow

    def create(self, config):
        return self.model_class(config)


# --- the broken ones: one bug each ----------------------------------------------------------


class LeakyAR(TinyAR):
    leak = True  # every position also sees its own value


class LeaksFuture(TinyAR):
    """Sees exactly one later position: the raster-order neighbour after it."""

    def __init__(self, config):
        super().__init__(config)
        order = self.orders[0]
        for t in range(self.dims - 1):
            self.mask[0, order[t], order[t + 1]] = 1.0


class Unnormalised(TinyAR):
    """Treats the C levels as independent Bernoulli logits: not a distribution over levels."""

    def member_log_probs(self, x):
        logp = [F.logsigmoid(self.conditional_logits(x, k)) for k in range(self.ensemble_size)]
        return torch.stack([lp.gather(1, x.unsqueeze(1)).reshape(len(x), -1).sum(1) for lp in logp])


class DropsBuffer(TinyAR):
    orders_are_buffers = False
    orders_from_config = False


class GlobalRandomOrders(TinyAR):
    """Buffers, but drawn from the global generator: not derived from the config."""

    orders_from_config = False


class AcceptsFloats(TinyAR):
    def log_prob(self, x):
        x = x.round().long().clamp(0, self.levels - 1)  # "helpfully" coerces any input
        return torch.logsumexp(self.member_log_probs(x), 0) - math.log(self.ensemble_size)


class UniformSampler(TinyAR):
    def draw(self, logits, generator):
        return super().draw(torch.zeros_like(logits), generator)


class ForgetsKnownValues(TinyAR):
    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        return super().sample(n, temperature=temperature, generator=generator)


class ClampAndDraw(TinyAR):
    """Completes every known set by clamping it and drawing the rest in order (yesterday's
    first-party samplers); strong weights, so that the known values matter."""

    def __init__(self, config):
        super().__init__(config)
        with torch.no_grad():
            self.weight.mul_(10)

    def sample(self, n, *, temperature=1.0, generator=None, given=None, mask=None):
        check_sampling(n, temperature)
        return self.clamp_and_draw(n, given, mask, temperature, generator)


class BatchDependent(TinyAR):
    def log_prob(self, x):
        lp = super().log_prob(x)
        return lp - 0.01 * (lp - lp.mean()).detach()  # a "normalisation" over the batch


class WrongLogDet(LinearFlow):
    def log_det(self, batch):
        return self.log_diag.exp().sum().expand(batch)  # det instead of log det


class WrongInverse(LinearFlow):
    def invert(self, z):
        return (z - self.shift) @ torch.linalg.inv(self.matrix()) + 0.0 * z  # A^-T, not A^-1


@dataclass(frozen=True)
class LooseConfig(ARConfig):
    pass


class IgnoresUnknownKeys(ARFamily):
    name = "loose-ar"
    Config = LooseConfig

    def parse_config(self, raw, *, where=None):
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k in ("shape", "levels", "members")}
        return super().parse_config(raw, where=where)


def family(model_class, base=ARFamily, name=None):
    return type(model_class.__name__ + "Family", (base,),
                {"model_class": model_class, "name": name or base.name})()


# --- correct families pass ----------------------------------------------------------------------


def statuses(report):
    return {r.check: r.status for r in report.results}


def test_correct_autoregressive_family_passes_every_check():
    report = check_family(ARFamily())
    assert report.passed, report.summary()
    assert set(statuses(report)) == set(CHECKS)
    assert statuses(report)["causality"] == "passed"
    assert statuses(report)["completion"] == "passed"
    assert statuses(report)["invertibility"] == "not applicable"
    assert "conditional of a known prefix" in report.result("completion").message


def test_correct_ensemble_passes_and_every_member_is_checked():
    report = check_family(ARFamily(), {"shape": [1, 2, 2], "levels": 3, "members": 3})
    assert report.passed, report.summary()
    assert "3 ensemble members" in report.result("causality").message


def test_correct_flow_passes_every_check():
    report = check_family(FlowFamily())
    assert report.passed, report.summary()
    applies = {k for k, v in statuses(report).items() if v == "passed"}
    assert {"invertibility", "log_det", "normalisation", "samples_match_log_prob"} <= applies
    assert statuses(report)["causality"] == "not applicable"
    assert statuses(report)["completion"] == "not applicable"


def test_flow_in_one_dimension_and_in_five():
    assert check_family(FlowFamily(), {"shape": [1]}).passed
    report = check_family(FlowFamily(), {"shape": [5]})
    assert report.passed
    assert statuses(report)["log_det"] == "not applicable"
    assert "D <= 4" in report.result("log_det").message
    # 2 < D <= 8: normalisation by importance sampling instead of a grid.
    assert "importance sampling" in report.result("normalisation").message


# --- broken families fail, in the right check, with a message that says what is wrong ---------


def failure(fam, check, config=None):
    """The message of ``check`` on ``fam``, which must fail (only that check is run)."""
    [one] = [c for c in family_checks(fam, config) if c.name == check]
    result = one.run()
    assert result.status == "failed", result
    return result.message


def test_a_position_that_sees_itself_fails_causality():
    message = failure(family(LeakyAR), "causality", {"shape": [1, 2, 2], "levels": 3})
    assert "depend on the input at position" in message
    assert "is the same position" in message and "must be exactly 0" in message


def test_a_position_that_sees_the_future_fails_causality_and_names_both_pixels():
    message = failure(family(LeaksFuture), "causality")
    assert "comes after it in the model's order" in message
    assert "position (0, " in message


def test_a_leak_in_one_ensemble_member_is_found():
    class OneLeakyMember(TinyAR):
        def __init__(self, config):
            super().__init__(config)
            self.mask[1] += torch.eye(self.dims)

    message = failure(family(OneLeakyMember), "causality",
                      {"shape": [1, 2, 2], "levels": 3, "members": 2})
    assert "ensemble member 1" in message


def test_an_unnormalised_family_fails_normalisation():
    message = failure(family(Unnormalised), "normalisation")
    assert "inputs sum to" in message and "not 1" in message


def test_a_mask_that_is_not_a_buffer_fails_save_load():
    report = check_family(family(DropsBuffer), raise_on_failure=False)
    message = report.result("save_load").message
    assert "log_prob differs after save -> load" in message
    assert "registered buffer" in message
    # ... and only that (the reloaded model also scores new data differently): everything
    # else about the family is fine.
    assert [r.check for r in report.failures] == ["save_load", "state_after_reload"]


def test_buffers_drawn_from_the_global_generator_fail_derived_buffers():
    message = failure(family(GlobalRandomOrders), "derived_buffers")
    assert "buffer 'orders' differs between two builds" in message
    assert "state_buffers" in message and "manual_seed(config.seed)" in message
    # Loading refuses such an artifact too: save_load fails, naming the buffer.
    assert "buffer 'orders'" in failure(family(GlobalRandomOrders), "save_load")


def test_state_buffers_must_name_real_buffers_and_exempt_them():
    class Declares(ARFamily):
        state_buffers = ("orders", "mask")

    report = check_family(family(GlobalRandomOrders, Declares), raise_on_failure=False)
    assert report.result("derived_buffers").status == "passed", report.summary()
    assert "0 derived buffer(s)" in report.result("derived_buffers").message

    class Typo(ARFamily):
        state_buffers = ("order",)

    message = failure(Typo(), "derived_buffers")
    assert "'order', which matches no buffer" in message and "orders" in message


def test_accepting_bad_input_fails_bad_input():
    message = failure(family(AcceptsFloats), "bad_input")
    assert "log_prob with float values was accepted" in message
    assert "a value equal to levels (3) was accepted" in message


def test_a_sampler_that_disagrees_with_log_prob_fails():
    message = failure(family(UniformSampler), "samples_match_log_prob")
    assert "do not follow the enumerated probabilities" in message and "chi-square" in message


class Independent(TinyAR):
    """Every position sees none of the others: the model cannot express any dependence."""

    def __init__(self, config):
        super().__init__(config)
        self.mask.zero_()


def test_the_kit_makes_the_model_dependent_before_testing_samplers():
    report = check_family(ARFamily(), {"shape": [1, 2, 2], "levels": 3})
    note = report.result("samples_match_log_prob").message
    assert "dependence (TV to the product of marginals)" in note
    reached = re.search(r"marginals\) (?:[\d.]+ raised to )?([\d.]+)", note)
    assert reached and float(reached.group(1)) >= 0.2, note


def test_a_model_that_cannot_be_made_dependent_fails_with_advice():
    message = failure(family(Independent), "samples_match_log_prob")
    assert "could not make the model strongly dependent" in message
    assert "min_dependence=0" in message and "config" in message
    report = check_family(family(Independent), min_dependence=0, raise_on_failure=False)
    assert report.result("samples_match_log_prob").status == "passed", report.summary()


def test_completion_that_overwrites_known_values_fails():
    message = failure(family(ForgetsKnownValues), "completion")
    assert "completion changed" in message and "known values" in message


@pytest.mark.parametrize("members", [1, 2])
def test_completion_that_clamps_and_draws_fails_on_a_known_suffix(members):
    config = {"shape": [1, 2, 2], "levels": 3, "members": members}
    message = failure(family(ClampAndDraw), "completion", config)
    assert "last half of the model's order known" in message
    assert "zoo.infer.completion.complete" in message
    # The same model, completing through zoo.infer.completion, passes.
    class Strong(ClampAndDraw):
        sample = TinyAR.sample
    report = check_family(family(Strong), config, raise_on_failure=False)
    assert report.result("completion").status == "passed", report.result("completion").message


def test_batch_dependent_log_prob_fails():
    message = failure(family(BatchDependent), "log_prob")
    assert "depends on the rest of the batch" in message


def test_a_config_that_accepts_unknown_keys_fails():
    message = failure(IgnoresUnknownKeys(), "config_validation")
    assert "an unknown key 'zoo_testing_unknown_key' was accepted" in message


def test_a_wrong_log_det_fails_log_det_and_normalisation():
    fam = family(WrongLogDet, FlowFamily)
    message = failure(fam, "log_det")
    assert "autograd's Jacobian gives" in message
    assert "integrates to" in failure(fam, "normalisation")


def test_a_wrong_inverse_fails_invertibility():
    message = failure(family(WrongInverse, FlowFamily), "invertibility")
    assert "invert(forward(x)[0]) differs from x" in message


def test_a_discrete_family_without_logits_must_declare_itself():
    class NoLogits(TinyAR):
        conditional_logits = None

        def member_log_probs(self, x):
            return super().member_log_probs(x)

    class Declared(ARFamily):
        autoregressive = False
        model_class = NoLogits

    message = failure(family(NoLogits), "causality")
    assert "must expose conditional_logits(x)" in message and "autoregressive = False" in message
    # NoLogits cannot even score (its log_prob needs logits); use the real one, declared.
    report = check_family(family(TinyAR, Declared), raise_on_failure=False)
    assert report.result("causality").status == "not applicable"


def test_logits_that_ignore_the_one_hot_input_are_reported():
    class ArgmaxInput(TinyAR):
        def conditional_logits(self, x, k=0):
            if x.is_floating_point():
                x = x.argmax(1)  # not differentiable: the kit cannot see the dependencies
            return super().conditional_logits(x, k)

    message = failure(family(ArgmaxInput), "causality")
    assert "no logit is differentiable" in message


def test_a_too_large_discrete_config_is_refused_with_advice():
    message = failure(ARFamily(), "normalisation", {"shape": [1, 4, 4], "levels": 3})
    assert "too many" in message and "tiny config" in message


# --- the API ----------------------------------------------------------------------------------


def test_check_family_raises_one_error_naming_every_failed_check():
    with pytest.raises(ConformanceError) as info:
        check_family(family(LeakyAR))
    text = str(info.value)
    assert "family 'tiny-ar' failed" in text
    assert "check 'causality' failed" in text and "check 'normalisation' failed" in text
    assert isinstance(info.value, AssertionError)


def test_pytest_form_one_check_per_test():
    checks = family_checks(FlowFamily())
    assert [str(c) for c in checks] == list(CHECKS)
    by_name = {c.name: c for c in checks}
    by_name["log_det"]()  # passes: returns None
    with pytest.raises(pytest.skip.Exception, match="causality: not applicable"):
        by_name["causality"]()
    broken = {c.name: c for c in family_checks(family(WrongLogDet, FlowFamily))}
    with pytest.raises(ConformanceError, match="check 'log_det' failed"):
        broken["log_det"]()


def test_skip_leaves_checks_out_and_rejects_unknown_names():
    report = check_family(family(LeakyAR), skip=["causality", "normalisation", "completion",
                                                 "samples_match_log_prob",
                                                 "normaliser_in_any_dimension"])
    assert report.result("causality").status == "skipped"
    with pytest.raises(ValueError, match="unknown check"):
        family_checks(ARFamily(), skip=["causalty"])


def test_the_kit_leaves_the_global_random_state_alone():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    check_family(FlowFamily())
    assert torch.equal(state, torch.get_rng_state())


def test_a_broken_family_can_be_checked_under_the_name_of_an_installed_one():
    """The kit stands the family in for save/load and puts the installed one back."""
    fam = family(LinearFlow, FlowFamily, name="realnvp")
    installed = registry.registry().get("families", "realnvp").obj
    report = check_family(fam, raise_on_failure=False)
    assert report.result("save_load").status == "passed", report.summary()
    assert registry.registry().get("families", "realnvp").obj is installed


def test_given_data_is_used():
    data = torch.tensor([[0.5, -0.25], [1.0, 2.0]])
    report = check_family(FlowFamily(), data=data)
    assert report.passed
    with pytest.raises(ConformanceError, match="log_prob"):
        check_family(FlowFamily(), data=torch.full((2, 2), float("nan")),
                     skip=["bad_input"])


def test_default_configs_are_tiny():
    assert default_config(ARFamily()) == {"shape": [1, 2, 2], "levels": 3}
    assert default_config(FlowFamily()) == {"shape": [2]}


def test_command_line(capsys):
    assert main(["realnvp", "--config", '{"shape": [2], "couplings": 2, "hidden": 8}']) == 0
    out = capsys.readouterr().out
    assert "conformance of family 'realnvp'" in out and "log_det" in out
    assert main(["no-such-family"]) == 2
    assert "unknown family" in capsys.readouterr().err
