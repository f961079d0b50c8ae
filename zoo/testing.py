"""The conformance kit: does a family keep the zoo's contract? (``check_estimator`` for likelihoods)

Run every check and get one error naming each check that failed and why::

    from zoo.testing import check_family
    report = check_family(MyFamily(), config={"shape": [2]})     # raises ConformanceError
    print(report.summary())

or one pytest test per check (a check that does not apply to the family is skipped)::

    import pytest
    from zoo.testing import family_checks

    @pytest.mark.parametrize("check", family_checks(MyFamily(), {"shape": [2]}), ids=str)
    def test_conformance(check):
        check()

or from a shell: ``python -m zoo.testing FAMILY [--config JSON]`` (an installed family by name).

The checks
==========

Every family:

- ``contract``: ``name``, ``data_kind``, a frozen dataclass ``Config`` with ``shape`` (and
  ``levels`` for discrete data), an implemented ``create``.
- ``config_roundtrip``: the config survives JSON and parses back equal.
- ``config_validation``: unknown keys, a missing ``shape``, wrong types and absurd sizes are
  rejected by ``parse_config`` with a ``ValueError`` (``zoo.errors.ConfigError``), before any
  allocation.
- ``build``: ``build(config)`` gives a ``ZooModel`` that knows its family and config, with
  finite tensors.
- ``log_prob``: float ``[B]``, finite, in nats (at most 0 for discrete data), the same for an
  example alone as inside a batch.
- ``log_prob_gradients``: ``-log_prob(x).mean()`` back-propagates finite, non-zero gradients
  into the parameters (what the generic trainer needs).
- ``sample``: shape ``[n, *shape]``; float32 (continuous) or int64 in ``0..levels-1``
  (discrete); the same generator seed gives the same samples; temperatures work.
- ``bad_input``: wrong shape, wrong dtype, out-of-range values, NaN and infinities make
  ``log_prob`` raise ``ValueError``; so do a non-positive sample count and temperature.
- ``save_load``: ``zoo.artifacts.save`` then ``load`` (in a temporary folder, with the global
  RNG in another state) gives bit-identical ``log_prob`` and bit-identical samples for the same
  generator. This is what catches a mask or ordering kept as a plain attribute instead of a
  registered buffer: the loaded model draws a new one.

Discrete families (levels ``C``, ``D`` positions; the config must be tiny, ``C**D <= 65536``):

- ``normalisation``: the probabilities of all ``C**D`` inputs, by enumeration, sum to 1
  within 1e-5.
- ``samples_match_log_prob``: a chi-square test of 4000 samples against the enumerated
  probabilities (p > 1e-4, fixed seeds, so it is deterministic).
- ``causality``: the autoregressive protocol below, checked by gradients and by perturbation.
- ``completion``: ``sample(n, given=x, mask=known)`` keeps every known value, and for a known
  prefix (in the model's order) draws the rest from the exact conditional (chi-square).

Continuous families:

- ``invertibility`` (flows): ``invert(forward(x)[0]) == x`` and ``forward(invert(z))[0] == z``.
- ``log_det`` (flows, ``D <= 4``): the log-determinant ``forward`` returns equals
  ``torch.linalg.slogdet`` of the autograd Jacobian, in float64.
- ``normalisation`` (``D <= 2``): the density integrates to 1 within 1% on a grid chosen from
  the range of the model's samples.
- ``samples_match_log_prob`` (``D <= 2``): a chi-square test of 4000 samples against the
  probabilities of grid cells.

A check that does not apply (a flow check for a mixture model, grid integration in 5
dimensions) is reported as ``not applicable`` with the reason, never as passed.

Before the checks the kit nudges every floating-point parameter by noise of standard
deviation ``perturb / sqrt(fan_in)`` (``perturb=0.1``; biases and other 1-d parameters by
``perturb``), so every layer's output moves by about ``perturb``: flows usually start as the
identity (zero-initialised output layers), and a log-det check on the identity proves
nothing. Everything runs under a fixed seed, inside
``torch.random.fork_rng``, so the caller's random state is untouched.

Protocols the kit relies on
===========================

**Autoregressive protocol** (every discrete family, unless its ``Family`` class sets
``autoregressive = False``, in which case ``causality`` and ``completion`` are not
applicable; a continuous family may opt in with ``autoregressive = True`` for ``completion``):

``model.conditional_logits(x) -> Tensor[B, C, *shape]``
    (sizes of 1 may be left out: ``[B, C, H, W]`` for images of shape ``[1, H, W]``.)
    The logits of every position's conditional distribution over its ``C`` levels, each
    computed only from the positions before it in the model's order. ``x`` is either int64
    levels ``[B, *shape]`` or a float one-hot tensor ``[B, C, *shape]`` (levels on dim 1).
    The kit passes a one-hot tensor with ``requires_grad`` to check causality by gradients,
    so the float path must be differentiable: start with
    ``h = x if x.is_floating_point() else F.one_hot(x, C).movedim(-1, 1).float()`` and use
    ``h``: an embedding is then ``torch.einsum("bc...,ce->be...", h, weight)``, a scalar input
    is ``(h * torch.arange(C).view(1, C, 1, ...)).sum(1)``. ``log_prob(x)`` must equal
    ``log_softmax(conditional_logits(x), 1)`` gathered at ``x`` and summed over positions.
    (The name is specific on purpose: a model's own ``logits`` helper can keep whatever
    signature suits it.)
``model.order() -> LongTensor[D]`` (optional; default: raster order ``arange(D)``)
    The flat positions (indices into ``x[0].flatten()``) in generation order.
``model.ensemble_size: int`` (optional; default 1)
    An order- or connectivity-agnostic ensemble of ``K`` autoregressive models (MADE with
    ``K`` masks) takes the member as a second argument, ``conditional_logits(x, k)`` and
    ``order(k)`` for ``k in range(K)``; its ``log_prob`` must be
    ``logsumexp_k(log p_k(x)) - log K``. The kit checks causality of every member and, for
    ensembles, skips the exact-conditional part of ``completion``.

**Flow protocol** (continuous families whose model has ``invert``): ``model(x)`` (that is,
``forward``) returns ``(z, logdet)`` with ``z`` of shape ``[B, D]`` and ``logdet`` ``[B]``,
the log absolute determinant of ``dz/dx``; ``model.invert(z)`` returns ``x``. Models without
``invert`` (a mixture, an autoregressive density) skip ``invertibility`` and ``log_det``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.errors import ZooError
from zoo.family import Family
from zoo.model import ZooModel

__all__ = [
    "Check",
    "ConformanceError",
    "NotApplicable",
    "Report",
    "Result",
    "check_family",
    "family_checks",
    "default_config",
    "CHECKS",
]

#: The largest number of inputs ``C**D`` that discrete normalisation will enumerate.
MAX_ENUMERATION = 1 << 16
#: Samples drawn for the chi-square tests.
TEST_SAMPLES = 4000
#: A chi-square p-value below this fails (seeds are fixed, so the outcome is deterministic).
MIN_P_VALUE = 1e-4


class ConformanceError(AssertionError, ZooError):
    """A family failed one or more conformance checks; the message names each and says why."""


class NotApplicable(Exception):  # noqa: N818 - it is a verdict, not an error
    """Raised by a check that does not apply to the family under test (with the reason)."""


class _Failure(Exception):
    """Raised inside a check with the sentence that explains what is wrong."""


def fail(message: str) -> None:
    raise _Failure(message)


def default_config(family: Family) -> dict[str, Any]:
    """The smallest complete config: DESIGN.md says every key but shape and levels has a default."""
    if getattr(family, "data_kind", None) == "discrete":
        return {"shape": [1, 2, 2], "levels": 3}
    return {"shape": [2]}


# --- the object under test ------------------------------------------------------------------


class Subject:
    """A family with the config and data it is checked on; builds its model once, lazily."""

    def __init__(self, family: Family, config: Mapping[str, Any] | Any | None,
                 data: Tensor | None, *, seed: int, perturb: float) -> None:
        self.family = family
        self.raw = default_config(family) if config is None else config
        self.given_data = data
        self.seed = seed
        self.perturb = perturb

    @property
    def name(self) -> str:
        return str(getattr(self.family, "name", type(self.family).__name__))

    @property
    def discrete(self) -> bool:
        return getattr(self.family, "data_kind", None) == "discrete"

    @property
    def autoregressive(self) -> bool:
        """Discrete families are autoregressive unless they say otherwise; continuous ones are not."""
        declared = getattr(self.family, "autoregressive", None)
        return self.discrete if declared is None else bool(declared)

    @cached_property
    def config(self) -> Any:
        return self.family.parse_config(self.raw)

    @cached_property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.config.shape)

    @cached_property
    def levels(self) -> int:
        return int(self.config.levels)

    @cached_property
    def dims(self) -> int:
        return math.prod(self.shape)

    def generator(self, offset: int) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed * 1000 + offset)

    def fresh_model(self, *, perturb: bool = True) -> ZooModel:
        """Build under the kit's seed, nudge the parameters, switch to eval mode."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = self.family.build(self.raw)
        if perturb and self.perturb:
            g = self.generator(99)
            with torch.no_grad():
                for p in model.parameters():
                    if p.is_floating_point():
                        # Scaled by fan-in so that every layer's output moves by about
                        # `perturb`, however wide it is: the model changes, but stays tame.
                        fan_in = p[0].numel() if p.dim() > 1 else 1
                        noise = torch.randn(p.shape, generator=g, dtype=p.dtype)
                        p.add_(noise * (self.perturb / math.sqrt(fan_in)))
        return model.eval()

    @cached_property
    def model(self) -> ZooModel:
        try:
            return self.fresh_model()
        except Exception as exc:
            fail(f"building the model from {_show(self.raw)} failed: {_describe(exc)}")
            raise  # unreachable: fail() raises

    @cached_property
    def data(self) -> Tensor:
        if self.given_data is not None:
            return self.given_data
        g = self.generator(1)
        if self.discrete:
            return torch.randint(0, self.levels, (16, *self.shape), generator=g)
        return torch.randn(16, *self.shape, generator=g)


# --- checks, results, reports ---------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """The outcome of one check: ``passed``, ``failed``, ``not applicable`` or ``skipped``."""

    check: str
    status: str
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status != "failed"


@dataclass(frozen=True)
class Check:
    """One conformance check bound to a family; call it (in a test) or ``run()`` it."""

    name: str
    description: str
    subject: Subject = field(repr=False)
    function: Callable[[Subject], str | None] = field(repr=False)

    def run(self) -> Result:
        """Run the check and report, never raising (except for KeyboardInterrupt)."""
        start = time.perf_counter()
        try:
            note = self.function(self.subject)
        except NotApplicable as exc:
            status, message = "not applicable", str(exc)
        except _Failure as exc:
            status, message = "failed", str(exc)
        except Exception as exc:  # a crash inside the family is a failure of the family
            status, message = "failed", f"unexpected {_describe(exc)}"
        else:
            status, message = "passed", note or ""
        return Result(self.name, status, message, time.perf_counter() - start)

    def __call__(self) -> None:
        """Pytest form: raise ``ConformanceError`` on failure, skip when not applicable."""
        result = self.run()
        if result.status == "failed":
            raise ConformanceError(_failure_line(self.subject.name, result))
        if result.status == "not applicable" and "pytest" in sys.modules:
            import pytest

            pytest.skip(f"{self.name}: not applicable: {result.message}")

    def __str__(self) -> str:
        return self.name


@dataclass
class Report:
    """Every check's result for one family."""

    family: str
    results: list[Result]

    @property
    def failures(self) -> list[Result]:
        return [r for r in self.results if r.status == "failed"]

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def seconds(self) -> float:
        return sum(r.seconds for r in self.results)

    def result(self, check: str) -> Result:
        for r in self.results:
            if r.check == check:
                return r
        raise KeyError(check)

    def summary(self) -> str:
        """A table: one line per check with its status, time and message."""
        width = max(len(r.check) for r in self.results)
        lines = [f"conformance of family {self.family!r}:"]
        for r in self.results:
            text = f"  {r.check:<{width}}  {r.status:<14} {r.seconds:6.2f} s"
            if r.message:
                text += f"  {r.message}"
            lines.append(text)
        lines.append(f"  {'total':<{width}}  {len(self.failures)} failed {' ' * 6}"
                     f"{self.seconds:6.2f} s")
        return "\n".join(lines)

    def raise_for_failures(self) -> None:
        if self.failures:
            lines = [_failure_line(self.family, r) for r in self.failures]
            raise ConformanceError(
                f"family {self.family!r} failed {len(lines)} conformance check(s):\n  "
                + "\n  ".join(lines)
            )

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "passed": self.passed, "seconds": self.seconds,
                "results": [dataclasses.asdict(r) for r in self.results]}


def _failure_line(family: str, result: Result) -> str:
    return f"{family}: check {result.check!r} failed: {result.message}"


def family_checks(family: Family | str | type, config: Mapping[str, Any] | Any | None = None,
                  data: Tensor | None = None, *, seed: int = 0, perturb: float = 0.1,
                  skip: Collection[str] = ()) -> list[Check]:
    """One ``Check`` per conformance check of ``family``, sharing one lazily built model.

    ``family`` is a ``Family`` instance, a ``Family`` subclass or the name of an installed
    family. ``config`` defaults to the smallest complete one (``shape [2]``, or ``shape
    [1, 2, 2]`` with ``levels 3``); discrete families need a tiny one for enumeration.
    ``data`` is a small batch of valid examples (default: random ones). ``skip`` names checks
    the caller deliberately leaves out.
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) to skip: {', '.join(sorted(unknown))}; "
                         f"the checks are {', '.join(CHECKS)}")
    subject = Subject(_resolve(family), config, data, seed=seed, perturb=perturb)
    return [Check(name, (fn.__doc__ or "").strip().splitlines()[0], subject, fn)
            for name, fn in CHECKS.items() if name not in skip]


def check_family(family: Family | str | type, config: Mapping[str, Any] | Any | None = None,
                 data: Tensor | None = None, *, seed: int = 0, perturb: float = 0.1,
                 skip: Collection[str] = (), raise_on_failure: bool = True) -> Report:
    """Run every check on ``family``; raise ``ConformanceError`` listing the failures.

    Arguments as for ``family_checks``. Returns the ``Report`` (with per-check timings); with
    ``raise_on_failure=False`` it returns it even when checks failed.
    """
    checks = family_checks(family, config, data, seed=seed, perturb=perturb, skip=skip)
    results = [c.run() for c in checks]
    results += [Result(name, "skipped", "left out by the caller") for name in CHECKS
                if name in skip]
    report = Report(checks[0].subject.name if checks else str(family), results)
    if raise_on_failure:
        report.raise_for_failures()
    return report


def _resolve(family: Family | str | type) -> Family:
    if isinstance(family, str):
        from zoo.api import get_family

        return get_family(family)
    if isinstance(family, type):
        return family()
    return family


# --- every family ---------------------------------------------------------------------------


def check_contract(s: Subject) -> None:
    """The family declares a name, a data kind and a frozen dataclass Config with shape."""
    f = s.family
    if not isinstance(f, Family):
        fail(f"{f!r} is not an instance of zoo.Family")
    name = getattr(f, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
        fail(f"family.name must be a non-empty string without '/', got {name!r}")
    kind = getattr(f, "data_kind", None)
    if kind not in ("continuous", "discrete"):
        fail(f"family.data_kind must be 'continuous' or 'discrete', got {kind!r}")
    cfg = getattr(f, "Config", None)
    if not (isinstance(cfg, type) and dataclasses.is_dataclass(cfg)):
        fail(f"family.Config must be a dataclass, got {cfg!r}")
    if not cfg.__dataclass_params__.frozen:
        fail(f"{cfg.__name__} must be frozen (@dataclass(frozen=True)): configs are values")
    fields = {fl.name for fl in dataclasses.fields(cfg)}
    needed = ["shape"] + (["levels"] if kind == "discrete" else [])
    missing = [n for n in needed if n not in fields]
    if missing:
        fail(f"{cfg.__name__} lacks the field(s) {', '.join(missing)} every {kind} config has")
    if type(f).create is Family.create:
        fail(f"{type(f).__name__} does not implement create(config)")


def check_config_roundtrip(s: Subject) -> None:
    """The config parses, survives JSON and parses back to an equal config."""
    cfg = _parse_or_fail(s)
    try:
        text = json.dumps(s.family.config_dict(cfg))
    except (TypeError, ValueError) as exc:
        fail(f"config_dict(config) is not JSON-serialisable: {exc}")
    again = s.family.parse_config(json.loads(text))
    if again != cfg:
        fail(f"config changes through JSON: {cfg!r} became {again!r}")


def check_config_validation(s: Subject) -> None:
    """Unknown keys, missing shape, wrong types and absurd sizes are rejected before allocation."""
    cfg = _parse_or_fail(s)
    base = s.family.config_dict(cfg)
    huge_shape = [1, 1 << 20, 1 << 20] if s.discrete else [1 << 40]
    cases: list[tuple[str, Any]] = [
        ("an unknown key 'zoo_testing_unknown_key'", {**base, "zoo_testing_unknown_key": 1}),
        ("a config without 'shape'", {k: v for k, v in base.items() if k != "shape"}),
        ("shape given as a string", {**base, "shape": "large"}),
        (f"an absurd shape {huge_shape}", {**base, "shape": huge_shape}),
        ("a shape with a zero size", {**base, "shape": [0] * len(base["shape"])}),
        ("a list instead of a mapping", [base]),
    ]
    if s.discrete:
        cases += [("levels 0", {**base, "levels": 0}), ("levels 2**40", {**base, "levels": 1 << 40})]
    problems = []
    for what, raw in cases:
        try:
            s.family.parse_config(raw)
        except ValueError as exc:
            if what.startswith("an unknown key") and "zoo_testing_unknown_key" not in str(exc):
                problems.append(f"{what} was rejected, but the message does not name the key: "
                                f"{exc}")
        except Exception as exc:
            problems.append(f"{what} raised {_describe(exc)} instead of ValueError (ConfigError)")
        else:
            problems.append(f"{what} was accepted")
    if problems:
        fail("parse_config must reject bad configs with a ValueError: " + "; ".join(problems))


def check_build(s: Subject) -> None:
    """build(config) gives a ZooModel that knows its family and config, with finite tensors."""
    try:
        model = s.fresh_model(perturb=False)
    except Exception as exc:
        fail(f"build({_show(s.raw)}) raised {_describe(exc)}")
    if not isinstance(model, ZooModel):
        fail(f"build() returned {type(model).__name__}, not a zoo.ZooModel")
    if model.family != s.name:
        fail(f"model.family is {model.family!r}, expected {s.name!r}")
    if model.config != s.config:
        fail(f"model.config is {model.config!r}, expected {s.config!r}")
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            fail(f"tensor {key!r} of a freshly built model is not finite")


def check_log_prob(s: Subject) -> None:
    """log_prob returns finite float [B] in nats, the same for an example alone or in a batch."""
    model, x = s.model, s.data
    with torch.no_grad():
        lp = model.log_prob(x)
        _check_log_prob_tensor(lp, len(x), "log_prob(x)")
        if s.discrete and (lp > 1e-5).any():
            fail(f"log_prob of discrete data is a log-probability, at most 0; got "
                 f"{lp.max().item():.4g}")
        alone = torch.cat([model.log_prob(x[i : i + 1]) for i in range(len(x))])
    gap = (alone - lp).abs().max().item()
    if gap > 1e-4 * (1 + lp.abs().max().item()):
        fail(f"log_prob of an example depends on the rest of the batch (differs by {gap:.3g} "
             "when scored alone; batch statistics in eval mode?)")


def check_log_prob_gradients(s: Subject) -> None:
    """-log_prob(x).mean() back-propagates finite, non-zero gradients into the parameters."""
    model = copy.deepcopy(s.model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        fail("the model has no trainable parameters")
    loss = -model.log_prob(s.data).mean()
    if not loss.requires_grad:
        fail("log_prob(x) is not differentiable with respect to the parameters "
             "(computed under no_grad or detached?)")
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        fail("no parameter received a gradient from log_prob")
    if not all(torch.isfinite(g).all() for g in grads):
        fail("log_prob gives non-finite gradients")
    if all((g == 0).all() for g in grads):
        fail("every gradient of log_prob is zero: the parameters do not affect the likelihood")


def check_sample(s: Subject) -> None:
    """sample(n) has shape [n, *shape], the data's dtype and range, and is reproducible."""
    model, n = s.model, 16
    a = model.sample(n, generator=s.generator(2))
    _check_samples(s, a, n, "sample(16)")
    b = model.sample(n, generator=s.generator(2))
    if not torch.equal(a, b):
        fail("two calls of sample() with generators of the same seed gave different samples")
    for t in (0.5, 2.0):
        _check_samples(s, model.sample(n, temperature=t, generator=s.generator(3)), n,
                       f"sample(16, temperature={t})")
    with torch.no_grad():
        lp = model.log_prob(a)
    if not torch.isfinite(lp).all():
        fail("log_prob of the model's own samples is not finite")


def check_bad_input(s: Subject) -> None:
    """Wrong shape, dtype or range, NaN and bad sample arguments raise a ValueError."""
    model, x = s.model, s.data[:2]
    if s.discrete:
        too_big = x.clone()
        too_big.view(len(x), -1)[:, -1] = s.levels
        negative = x.clone()
        negative.view(len(x), -1)[:, 0] = -1
        cases = [
            ("float values", x.float()),
            ("bool values", x > 0),
            (f"a value equal to levels ({s.levels})", too_big),
            ("a negative value", negative),
            ("a missing batch dimension", x[0]),
            ("an extra trailing dimension", x.unsqueeze(-1)),
            ("a wrong last size", torch.cat([x, x], dim=-1)),
            ("a Python list", x.tolist()),
        ]
    else:
        nan, inf = x.clone(), x.clone()
        nan[0, 0] = float("nan")
        inf[-1, -1] = float("inf")
        cases = [
            ("int64 values", x.round().long()),
            ("NaN", nan),
            ("an infinity", inf),
            ("a missing batch dimension", x[0]),
            ("an extra trailing dimension", x.unsqueeze(-1)),
            ("one dimension too many", torch.cat([x, x[:, :1]], dim=1)),
            ("a Python list", x.tolist()),
        ]
    problems = []
    for what, bad in cases:
        problem = _expect_value_error(lambda bad=bad: model.log_prob(bad))
        if problem:
            problems.append(f"log_prob with {what} {problem}")
    for what, call in [
        ("n=0", lambda: model.sample(0)),
        ("n=-1", lambda: model.sample(-1)),
        ("n=2.5", lambda: model.sample(2.5)),
        ("temperature=0", lambda: model.sample(2, temperature=0.0)),
        ("temperature=-1", lambda: model.sample(2, temperature=-1.0)),
        ("temperature=nan", lambda: model.sample(2, temperature=float("nan"))),
    ]:
        problem = _expect_value_error(call)
        if problem:
            problems.append(f"sample with {what} {problem}")
    if problems:
        fail("bad input must raise ValueError saying what was expected: " + "; ".join(problems))


def check_save_load(s: Subject) -> None:
    """save -> load gives bit-identical log_prob, and identical samples for the same generator."""
    from zoo import artifacts

    model, x = s.model, s.data
    with tempfile.TemporaryDirectory(prefix="zoo-testing-") as tmp, _registered(s.family):
        path = artifacts.save(model, Path(tmp) / "artifact")
        # Another RNG state at load: anything the model re-draws at build time (a random
        # ordering or mask that is not a registered buffer) comes out different.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed + 12345)
            loaded = artifacts.load(path)
    before, after = set(model.state_dict()), set(loaded.state_dict())
    if before != after:
        fail(f"the loaded model has other tensors: {sorted(before ^ after)}")
    with torch.no_grad():
        lp, lp2 = model.log_prob(x), loaded.log_prob(x)
    if not torch.equal(lp, lp2):
        gap = (lp - lp2).abs().max().item()
        fail(f"log_prob differs after save -> load (by up to {gap:.3g} nats): something the "
             "model needs is not in its state_dict (a mask, ordering or permutation kept as a "
             "plain attribute instead of a registered buffer?)")
    a = model.sample(8, generator=s.generator(4))
    b = loaded.sample(8, generator=s.generator(4))
    if not torch.equal(a, b):
        fail("samples differ after save -> load for the same generator: something the sampler "
             "uses is not in the state_dict")


# --- discrete families ----------------------------------------------------------------------


def check_normalisation(s: Subject) -> str | None:
    """Probabilities sum to 1: enumeration (discrete) or grid integration (continuous, D <= 2)."""
    if s.discrete:
        lp = _enumerated_log_probs(s)
        total = torch.logsumexp(lp, 0).exp().item()
        if not abs(total - 1) <= 1e-5:
            fail(f"the probabilities of all {len(lp)} inputs sum to {total:.8g}, not 1 "
                 "(within 1e-5): log_prob is not a normalised distribution "
                 "(missing log_softmax, or a position that sees its own value?)")
        return f"{len(lp)} inputs, total probability 1 {total - 1:+.1e}"
    grid = _density_grid(s)
    if not abs(grid.mass - 1) <= 0.01:
        fail(f"the density integrates to {grid.mass:.4f}, not 1 (within 1%), over the box "
             f"{grid.box} that holds all {TEST_SAMPLES} samples and a margin "
             "(a wrong log-det or base density, or log_prob not in nats?)")
    return f"integral {grid.mass:.5f} over {grid.box}"


def check_samples_match_log_prob(s: Subject) -> str | None:
    """A chi-square test of 4000 samples against exact (discrete) or grid (continuous) probabilities."""
    if s.discrete:
        lp = _enumerated_log_probs(s)
        probs = torch.softmax(lp, 0)
        x = s.model.sample(TEST_SAMPLES, generator=s.generator(5))
        _check_samples(s, x, TEST_SAMPLES, f"sample({TEST_SAMPLES})")
        counts = torch.bincount(_flat_index(x.reshape(len(x), -1), s.levels),
                                minlength=len(probs))
        where = "the enumerated probabilities"
    else:
        grid = _density_grid(s)
        probs, counts, where = grid.bin_probs, grid.bin_counts, "the grid's cell probabilities"
    p_value, stat, dof = _chi_square(counts.double(), probs.double())
    if p_value < MIN_P_VALUE:
        fail(f"{TEST_SAMPLES} samples do not follow {where}: chi-square {stat:.1f} on {dof} "
             f"degrees of freedom, p = {p_value:.2g} (sample() and log_prob() describe "
             "different distributions)")
    return f"chi-square {stat:.1f} on {dof} degrees of freedom, p = {p_value:.2g}"


def check_causality(s: Subject) -> str | None:
    """Autoregressive logits at each position ignore that position and later ones (gradients)."""
    if not s.discrete:
        raise NotApplicable("causality is checked for discrete autoregressive families")
    if not s.autoregressive:
        raise NotApplicable(f"family {s.name!r} declares autoregressive = False")
    model = s.model
    if not callable(getattr(model, "conditional_logits", None)):
        fail("an autoregressive discrete model must expose conditional_logits(x) -> "
             "[B, C, *shape] "
             "(or its Family must set autoregressive = False); see zoo.testing's protocol")
    x = s.data[:4]
    members = _ensemble_size(model)
    member_log_probs = []
    for k in range(members):
        order = _order(s, model, k)
        rank = torch.empty_like(order)
        rank[order] = torch.arange(len(order))
        logits = _logits(s, model, x, k)
        member_log_probs.append(_gathered(logits, x).sum(1))
        _check_gradients(s, model, x, k, order, rank)
        _check_perturbations(s, model, x, k, order, logits)
    with torch.no_grad():
        lp = model.log_prob(x).double()
    stacked = torch.stack(member_log_probs).double()
    expected = torch.logsumexp(stacked, 0) - math.log(members)
    gap = (lp - expected).abs().max().item()
    if gap > 1e-4 * (1 + lp.abs().max().item()):
        how = "sum over positions of log_softmax(conditional_logits(x), 1) at x"
        if members > 1:
            how = f"logsumexp over the {members} members of that, minus log {members}"
        fail(f"log_prob(x) differs from the {how} by {gap:.3g}: conditional_logits() is not "
             "the model log_prob uses")
    return f"{s.dims} positions" + (f", {members} ensemble members" if members > 1 else "")


def check_completion(s: Subject) -> str | None:
    """sample(given=, mask=) keeps known values; a known prefix gives the exact conditional."""
    model, n = s.model, 32
    given = s.data[:1].expand(n, *s.shape).clone() if len(s.data) else None
    mask = torch.rand((n, *s.shape), generator=s.generator(6)) < 0.5
    try:
        out = model.sample(n, generator=s.generator(6), given=given, mask=mask)
    except (ValueError, NotImplementedError) as exc:
        if s.autoregressive:
            fail(f"an autoregressive family must complete partly known inputs; "
                 f"sample(n, given=, mask=) raised {_describe(exc)}")
        raise NotApplicable(f"the model does not complete partly known inputs ({exc})") from None
    _check_samples(s, out, n, "sample(32, given=, mask=)")
    if not torch.equal(out[mask], given[mask]):
        changed = int((out[mask] != given[mask]).sum())
        fail(f"completion changed {changed} of {int(mask.sum())} known values")
    single = model.sample(4, generator=s.generator(7), given=given[0], mask=mask[0])
    _check_samples(s, single, 4, "sample(4, given=x[0], mask=m[0])")
    if not torch.equal(single[:, mask[0]], given[0][mask[0]].expand(4, -1)):
        fail("completion with one unbatched given/mask does not keep the known values")
    full = model.sample(2, generator=s.generator(8), given=given[:2],
                        mask=torch.ones((2, *s.shape), dtype=torch.bool))
    if not torch.equal(full, given[:2]):
        fail("completion with every value known must return the given values")
    if s.discrete and s.autoregressive and _ensemble_size(model) == 1:
        return _check_conditional(s, model)
    return None


# --- continuous families --------------------------------------------------------------------


def check_invertibility(s: Subject) -> str | None:
    """Flows: invert(forward(x)[0]) == x and forward(invert(z))[0] == z."""
    model, exact = _flow_model(s)
    tol = 1e-6 if exact else 1e-3
    x = s.data.to(_dtype(model))
    z, _ = _forward(model, x)
    back = model.invert(z)
    err = (back - x).abs().max().item()
    if not err <= tol * (1 + x.abs().max().item()):
        fail(f"invert(forward(x)[0]) differs from x by {err:.3g} "
             f"({'float64' if exact else 'float32'}, tolerance {tol:g})")
    z = torch.randn(x.shape, generator=s.generator(9), dtype=x.dtype)
    again, _ = _forward(model, model.invert(z))
    err = (again - z).abs().max().item()
    if not err <= tol * (1 + z.abs().max().item()):
        fail(f"forward(invert(z))[0] differs from z by {err:.3g}")
    return f"round-trip error {err:.1e} ({'float64' if exact else 'float32'})"


def check_log_det(s: Subject) -> str | None:
    """Flows with D <= 4: forward's log-det equals slogdet of the autograd Jacobian (float64)."""
    model, exact = _flow_model(s)
    if s.dims > 4:
        raise NotApplicable(f"the Jacobian is checked for D <= 4 (D = {s.dims}); "
                            "pass a config with a smaller shape")
    tol = 1e-6 if exact else 1e-3
    x = s.data[:8].to(_dtype(model))
    _, logdet = _forward(model, x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: _forward(model, v[None])[0][0], x[i])
        _, expected = torch.linalg.slogdet(jac.reshape(s.dims, s.dims))
        err = abs(logdet[i].item() - expected.item())
        if not err <= tol * (1 + abs(expected.item())):
            fail(f"forward() returns log|det J| = {logdet[i].item():.6g} at x = "
                 f"{x[i].tolist()}, autograd's Jacobian gives {expected.item():.6g}")
    spread = logdet.abs().max().item()
    return f"{len(x)} points, |log det| up to {spread:.3g} ({'float64' if exact else 'float32'})"


# --- helpers ----------------------------------------------------------------------------------


def _parse_or_fail(s: Subject) -> Any:
    try:
        return s.config
    except Exception as exc:
        fail(f"the config under test {_show(s.raw)} is rejected: {_describe(exc)}")


def _check_log_prob_tensor(lp: Any, batch: int, what: str) -> None:
    if not isinstance(lp, Tensor):
        fail(f"{what} returned {type(lp).__name__}, not a tensor")
    if not lp.is_floating_point():
        fail(f"{what} has dtype {lp.dtype}, expected a floating-point tensor")
    if tuple(lp.shape) != (batch,):
        fail(f"{what} has shape {list(lp.shape)}, expected [{batch}] (one value per example)")
    if not torch.isfinite(lp).all():
        fail(f"{what} is not finite for valid input: {lp.tolist()[:8]}")


def _check_samples(s: Subject, x: Any, n: int, what: str) -> None:
    if not isinstance(x, Tensor):
        fail(f"{what} returned {type(x).__name__}, not a tensor")
    want = [n, *s.shape]
    if list(x.shape) != want:
        fail(f"{what} has shape {list(x.shape)}, expected {want}")
    if s.discrete:
        if x.dtype != torch.int64:
            fail(f"{what} has dtype {x.dtype}, expected torch.int64 levels")
        if x.min() < 0 or x.max() >= s.levels:
            fail(f"{what} has values {int(x.min())}..{int(x.max())}, outside 0..{s.levels - 1}")
    else:
        if x.dtype != torch.float32:
            fail(f"{what} has dtype {x.dtype}, expected torch.float32")
        if not torch.isfinite(x).all():
            fail(f"{what} contains NaN or infinite values")


def _expect_value_error(call: Callable[[], Any]) -> str | None:
    """None when ``call`` raises a ValueError with a message; otherwise what went wrong."""
    try:
        with torch.no_grad():
            call()
    except ValueError as exc:
        return None if str(exc).strip() else "raised a ValueError without a message"
    except Exception as exc:
        return f"raised {_describe(exc)} instead of ValueError"
    return "was accepted"


@contextlib.contextmanager
def _registered(family: Family) -> Iterator[None]:
    """Make ``family`` the registered family of its name while the block runs.

    Saving and loading go through the plugin registry; a family under test need not be
    installed (or may be a variant of an installed one), so it stands in for the block.
    """
    from zoo.plugins import Registration, registry

    reg = registry()
    families, conflicts = reg.items["families"], reg.conflicts["families"]
    old = families.get(family.name)
    if old is not None and old.obj is family and family.name not in conflicts:
        yield
        return
    conflict = conflicts.pop(family.name, None)
    families[family.name] = Registration(family.name, family, "zoo.testing")
    try:
        yield
    finally:
        if old is None:
            families.pop(family.name, None)
        else:
            families[family.name] = old
        if conflict is not None:
            conflicts[family.name] = conflict


def _flat_index(x: Tensor, levels: int) -> Tensor:
    """The index of each row of levels in the enumeration order of ``_all_inputs``."""
    weights = levels ** torch.arange(x.shape[1], dtype=torch.int64)
    return (x.long() * weights).sum(1)


def _all_inputs(s: Subject) -> Tensor:
    total = s.levels ** s.dims
    if total > MAX_ENUMERATION:
        fail(f"enumerating {s.levels}**{s.dims} = {total} inputs is too many (limit "
             f"{MAX_ENUMERATION}); run the kit on a tiny config, e.g. shape [1, 2, 2], levels 3")
    index = torch.arange(total)
    digits = (index[:, None] // s.levels ** torch.arange(s.dims)) % s.levels
    return digits.reshape(total, *s.shape)


def _enumerated_log_probs(s: Subject) -> Tensor:
    inputs = _all_inputs(s)
    with torch.no_grad():
        lp = torch.cat([s.model.log_prob(chunk) for chunk in inputs.split(8192)])
    _check_log_prob_tensor(lp, len(inputs), "log_prob of the enumerated inputs")
    return lp.double()


def _chi_square(counts: Tensor, probs: Tensor) -> tuple[float, float, int]:
    """Pearson's test; cells expecting fewer than 5 samples are pooled into one."""
    n = counts.sum()
    expected = probs / probs.sum() * n
    small = expected < 5
    obs, exp = list(counts[~small]), list(expected[~small])
    if small.any():
        obs.append(counts[small].sum())
        exp.append(expected[small].sum())
    obs_t, exp_t = torch.stack(obs), torch.stack(exp)
    keep = exp_t > 0
    if (obs_t[~keep] > 0).any():
        return 0.0, math.inf, len(obs) - 1  # samples where the model has probability 0
    stat = (((obs_t - exp_t) ** 2)[keep] / exp_t[keep]).sum().item()
    dof = int(keep.sum()) - 1
    if dof < 1:
        return 1.0, stat, dof
    # The chi-square survival function is the regularised upper incomplete gamma function.
    p_value = torch.special.gammaincc(torch.tensor(dof / 2, dtype=torch.float64),
                                      torch.tensor(stat / 2, dtype=torch.float64))
    return float(p_value), stat, dof


def _ensemble_size(model: ZooModel) -> int:
    size = getattr(model, "ensemble_size", 1)
    if isinstance(size, Tensor):
        size = int(size)
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        fail(f"model.ensemble_size must be a positive int, got {size!r}")
    return size


def _order(s: Subject, model: ZooModel, k: int) -> Tensor:
    method = getattr(model, "order", None)
    if method is None:
        return torch.arange(s.dims)
    order = method(k) if _ensemble_size(model) > 1 else method()
    if not isinstance(order, Tensor) or order.dtype != torch.int64:
        fail(f"model.order() must return an int64 tensor of the {s.dims} positions, got {order!r}")
    order = order.flatten().cpu()
    if len(order) != s.dims or not torch.equal(order.sort().values, torch.arange(s.dims)):
        fail(f"model.order() must be a permutation of 0..{s.dims - 1}, got {order.tolist()}")
    return order


def _logits(s: Subject, model: ZooModel, x: Tensor, k: int) -> Tensor:
    method = model.conditional_logits
    logits = method(x, k) if _ensemble_size(model) > 1 else method(x)
    want = [len(x), s.levels, *s.shape]
    # Sizes of 1 may be dropped ([B, C, H, W] for images of shape [1, H, W]): the positions
    # keep their raster order either way.
    if not (isinstance(logits, Tensor) and list(logits.shape[:2]) == want[:2]
            and [d for d in logits.shape[2:] if d != 1] == [d for d in s.shape if d != 1]):
        got = list(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        fail(f"conditional_logits(x) must have shape [B, C, *shape] = {want}, got {got}")
    return logits.reshape(want)


def _gathered(logits: Tensor, x: Tensor) -> Tensor:
    """log_softmax(logits) at the observed levels, flattened to ``[B, D]``."""
    logp = torch.log_softmax(logits.double(), 1)
    return logp.gather(1, x.unsqueeze(1)).reshape(len(x), -1)


def _position(s: Subject, flat: int) -> str:
    index = []
    for size in reversed(s.shape):
        index.append(flat % size)
        flat //= size
    return "(" + ", ".join(str(i) for i in reversed(index)) + ")"


def _check_gradients(s: Subject, model: ZooModel, x: Tensor, k: int, order: Tensor,
                     rank: Tensor) -> None:
    """d logits[pos] / d onehot[later] must be exactly zero, position by position."""
    onehot = F.one_hot(x, s.levels).movedim(-1, 1).float().requires_grad_(True)
    try:
        logits = _logits(s, model, onehot, k).reshape(len(x), s.levels, s.dims)
    except _Failure:
        raise
    except Exception as exc:
        fail("conditional_logits() must accept a float one-hot tensor [B, C, *shape] (the kit "
             f"differentiates through it to check causality); it raised {_describe(exc)}")
    plain = _logits(s, model, x, k).reshape(len(x), s.levels, s.dims)
    if not torch.allclose(logits, plain, atol=1e-5, rtol=1e-5):
        fail("conditional_logits() of the one-hot tensor differ from those of the int64 levels")
    weights = torch.randn(len(x), s.levels, generator=s.generator(10))
    reached = False
    for pos in order.tolist():
        out = (logits[:, :, pos] * weights).sum()
        (grad,) = torch.autograd.grad(out, onehot, retain_graph=True, allow_unused=True)
        if grad is None:
            continue
        reached = True
        grad = grad.reshape(len(x), s.levels, s.dims).abs().amax((0, 1))
        future = rank >= rank[pos]
        leaks = (grad > 0) & future
        if leaks.any():
            q = int(torch.nonzero(leaks)[0])
            when = "is the same position" if q == pos else "comes after it"
            fail(f"the logits at position {_position(s, pos)} depend on the input at position "
                 f"{_position(s, q)}, which {when} in the model's order"
                 f"{f' (ensemble member {k})' if _ensemble_size(model) > 1 else ''}: "
                 f"|d logits / d input| = {grad[q].item():.3g}, must be exactly 0")
    if not reached and s.dims > 1:
        fail("no logit is differentiable with respect to the one-hot input: "
             "conditional_logits() must "
             "compute from the float one-hot tensor it is given (not from argmax), or the "
             "family must set autoregressive = False")


def _check_perturbations(s: Subject, model: ZooModel, x: Tensor, k: int, order: Tensor,
                         logits: Tensor) -> None:
    """Changing the inputs at and after a position leaves that position's logits unchanged."""
    flat = logits.detach().reshape(len(x), s.levels, s.dims)
    scale = 1e-6 * (1 + flat.abs().max().item())
    g = s.generator(11)
    for t, pos in enumerate(order.tolist()):
        changed = x.clone().reshape(len(x), s.dims)
        later = order[t:]
        changed[:, later] = torch.randint(0, s.levels, (len(x), len(later)), generator=g)
        with torch.no_grad():
            again = _logits(s, model, changed.reshape(x.shape), k).reshape(flat.shape)
        gap = (again[:, :, pos] - flat[:, :, pos]).abs().max().item()
        if gap > scale:
            fail(f"the logits at position {_position(s, pos)} change by {gap:.3g} when only "
                 "that position and later ones change: they see inputs they must not")


def _check_conditional(s: Subject, model: ZooModel) -> str | None:
    """With the first half of the order known, completions follow p(rest | known part)."""
    order = _order(s, model, 0)
    known_positions = order[: s.dims // 2]
    if s.levels ** (s.dims - len(known_positions)) > MAX_ENUMERATION:
        return "known values kept (config too large for the exact conditional)"
    # Every completion of the known prefix: the unknown positions take all level combinations.
    x0 = s.data[0].reshape(-1)
    unknown_positions = order[len(known_positions):]
    count = s.levels ** len(unknown_positions)
    digits = (torch.arange(count)[:, None] // s.levels ** torch.arange(len(unknown_positions)))
    candidates = x0.expand(count, s.dims).clone()
    candidates[:, unknown_positions] = digits % s.levels
    with torch.no_grad():
        lp = model.log_prob(candidates.reshape(-1, *s.shape)).double()
    mask = torch.zeros(s.dims, dtype=torch.bool)
    mask[known_positions] = True
    out = model.sample(TEST_SAMPLES, generator=s.generator(12), given=x0.reshape(s.shape),
                       mask=mask.reshape(s.shape))
    flat = out.reshape(len(out), -1)
    index = {int(i): j for j, i in enumerate(_flat_index(candidates, s.levels))}
    counts = torch.zeros(len(candidates), dtype=torch.float64)
    for i in _flat_index(flat, s.levels).tolist():
        counts[index[i]] += 1  # every sample keeps the known values, so it is a candidate
    p_value, stat, dof = _chi_square(counts, torch.softmax(lp, 0))
    if p_value < MIN_P_VALUE:
        fail(f"completions of a known prefix do not follow the model's conditional "
             f"distribution: chi-square {stat:.1f} on {dof} degrees of freedom, p = {p_value:.2g}")
    return f"known values kept; conditional of a known prefix: p = {p_value:.2g}"


def _flow_model(s: Subject) -> tuple[ZooModel, bool]:
    """A float64 copy of a flow (float32 if it cannot run in float64), and which it is."""
    if s.discrete:
        raise NotApplicable("flow checks apply to continuous families")
    if not callable(getattr(s.model, "invert", None)):
        raise NotApplicable("the model has no invert(z): not a flow")
    model = copy.deepcopy(s.model).double()
    try:
        _forward(model, s.data[:2].double())
    except _Failure:
        raise
    except Exception:
        return s.model, False
    return model, True


def _forward(model: ZooModel, x: Tensor) -> tuple[Tensor, Tensor]:
    out = model(x)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("a flow's forward(x) must return (z, logdet); got "
             f"{type(out).__name__}")
    z, logdet = out
    if tuple(z.shape) != tuple(x.shape) or tuple(logdet.shape) != (len(x),):
        fail(f"forward(x) must return z [B, D] and logdet [B], got {list(z.shape)} and "
             f"{list(logdet.shape)}")
    return z, logdet


def _dtype(model: ZooModel) -> torch.dtype:
    for t in model.parameters():
        return t.dtype
    return torch.float32


@dataclass
class _Grid:
    mass: float
    box: str
    bin_probs: Tensor
    bin_counts: Tensor


def _density_grid(s: Subject) -> _Grid:
    """Midpoint-rule integration over a box that holds every sample, plus a margin."""
    if s.dims > 2:
        raise NotApplicable(f"grid integration is done in 1 or 2 dimensions (D = {s.dims}); "
                            "pass a config with shape [1] or [2] to check it")
    cached = getattr(s, "_grid", None)
    if cached is not None:
        return cached
    model = s.model
    samples = model.sample(TEST_SAMPLES, generator=s.generator(5))
    _check_samples(s, samples, TEST_SAMPLES, f"sample({TEST_SAMPLES})")
    samples = samples.double()
    lo, hi = samples.min(0).values, samples.max(0).values
    span = (hi - lo).clamp_min(1e-3)
    lo, hi = lo - 0.5 * span, hi + 0.5 * span
    cells, bins = (4000, 40) if s.dims == 1 else (200, 10)
    width = (hi - lo) / cells
    axes = [lo[d] + width[d] * (torch.arange(cells, dtype=torch.float64) + 0.5)
            for d in range(s.dims)]
    points = torch.cartesian_prod(*axes).reshape(-1, s.dims)
    with torch.no_grad():
        lp = torch.cat([model.log_prob(c.float()) for c in points.split(16384)]).double()
    if not torch.isfinite(lp).all():
        fail("log_prob is not finite on the integration grid")
    cell_mass = lp.exp() * width.prod()
    mass = cell_mass.sum().item()
    per = cells // bins
    if s.dims == 1:
        bin_probs = cell_mass.reshape(bins, per).sum(1)
    else:
        bin_probs = cell_mass.reshape(bins, per, bins, per).sum((1, 3)).reshape(-1)
    which = ((samples - lo) / (hi - lo) * bins).long().clamp(0, bins - 1)
    flat = which[:, 0] if s.dims == 1 else which[:, 0] * bins + which[:, 1]
    counts = torch.bincount(flat, minlength=bins**s.dims).double()
    box = " x ".join(f"[{a:.3g}, {b:.3g}]" for a, b in zip(lo.tolist(), hi.tolist()))
    grid = _Grid(mass, box, bin_probs, counts)
    s._grid = grid
    return grid


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _show(value: Any) -> str:
    try:
        text = json.dumps(value if not dataclasses.is_dataclass(value) else
                          dataclasses.asdict(value), default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


#: Every check, in the order they run.
CHECKS: dict[str, Callable[[Subject], str | None]] = {
    "contract": check_contract,
    "config_roundtrip": check_config_roundtrip,
    "config_validation": check_config_validation,
    "build": check_build,
    "log_prob": check_log_prob,
    "log_prob_gradients": check_log_prob_gradients,
    "sample": check_sample,
    "bad_input": check_bad_input,
    "save_load": check_save_load,
    "normalisation": check_normalisation,
    "samples_match_log_prob": check_samples_match_log_prob,
    "causality": check_causality,
    "completion": check_completion,
    "invertibility": check_invertibility,
    "log_det": check_log_det,
}


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.testing FAMILY [--config JSON] [--json]``: check an installed family."""
    parser = argparse.ArgumentParser(prog="python -m zoo.testing",
                                     description="Run the conformance kit on an installed family.")
    parser.add_argument("family", help="family name, as shown by `zoo plugins`")
    parser.add_argument("--config", type=json.loads, default=None,
                        help='family config as JSON (default: the smallest, e.g. {"shape": [2]})')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", action="append", default=[], help="leave out a check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = check_family(args.family, args.config, seed=args.seed, skip=args.skip,
                              raise_on_failure=False)
    except (ZooError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
