"""The harness: the subject under test, checks, results, reports, and the helpers every
check shares (failing with a sentence, checking tensors a family returns)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import torch
from torch import Tensor

from zoo.errors import ZooError
from zoo.plugin.family import Family
from zoo.plugin.model import ZooModel

#: The largest number of inputs ``C**D`` that discrete normalisation will enumerate.
MAX_ENUMERATION = 1 << 16

#: Samples drawn for the chi-square tests.
TEST_SAMPLES = 4000

#: A chi-square p-value below this fails (seeds are fixed, so the outcome is deterministic).
MIN_P_VALUE = 1e-4

#: Before its samplers are tested, a discrete model is made at least this dependent: the
#: total variation between its joint distribution and the product of its marginals.
MIN_DEPENDENCE = 0.2

class ConformanceError(AssertionError, ZooError):
    """A family failed one or more conformance checks; the message names each and says why."""

class NotApplicable(Exception):  # noqa: N818 - it is a verdict, not an error
    """Raised by a check that does not apply to the family under test (with the reason)."""

class _Failure(Exception):
    """Raised inside a check with the sentence that explains what is wrong."""

def fail(message: str) -> None:
    raise _Failure(message)

def default_config(family: Family) -> dict[str, Any]:
    """The smallest complete config: every key but shape and levels has a default (the
    plugin contract, docs/plugins.md)."""
    if getattr(family, "data_kind", None) == "discrete":
        return {"shape": [1, 2, 2], "levels": 3}
    return {"shape": [2]}

class Subject:
    """A family with the config and data it is checked on; builds its model once, lazily."""

    def __init__(self, family: Family, config: Mapping[str, Any] | Any | None,
                 data: Tensor | None, *, seed: int, perturb: float,
                 min_dependence: float = MIN_DEPENDENCE) -> None:
        self.family = family
        self.raw = default_config(family) if config is None else config
        self.given_data = data
        self.seed = seed
        self.perturb = perturb
        self.min_dependence = min_dependence

    @property
    def name(self) -> str:
        return str(getattr(self.family, "name", type(self.family).__name__))

    @property
    def discrete(self) -> bool:
        return getattr(self.family, "data_kind", None) == "discrete"

    @property
    def autoregressive(self) -> bool:
        """Discrete families are autoregressive unless they say otherwise; continuous ones are not."""
        declared = self.family.autoregressive
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

@dataclass(frozen=True)
class Result:
    """The outcome of one check.

    ``check`` is the check's name (a key of ``CHECKS``); ``status`` is ``passed``,
    ``failed``, ``not applicable`` (the check does not apply to this family; ``message``
    says why) or ``skipped`` (left out by the caller); ``message`` says what is wrong for a
    failure and may carry a note (a p-value, an integral) for a pass; ``seconds`` is the
    time the check took.
    """

    check: str
    status: str
    message: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether the check did not fail (passed, not applicable or skipped)."""
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
    """Every check's result for one family: ``results`` holds one ``Result`` per check, in
    the order the checks ran (``check_family(..., raise_on_failure=False)`` returns it)::

        report = check_family(MyFamily(), raise_on_failure=False)
        for r in report.results:
            print(r.check, r.status, r.message)
    """

    family: str
    results: list[Result]

    @property
    def failures(self) -> list[Result]:
        """The results whose status is ``failed``."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def passed(self) -> bool:
        """Whether no check failed."""
        return not self.failures

    @property
    def seconds(self) -> float:
        """The time all checks took together."""
        return sum(r.seconds for r in self.results)

    def result(self, check: str) -> Result:
        """The result of the check called ``check`` (``KeyError`` if it did not run)."""
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
        """Raise ``ConformanceError`` naming every failed check and why, if any failed."""
        if self.failures:
            lines = [_failure_line(self.family, r) for r in self.failures]
            raise ConformanceError(
                f"family {self.family!r} failed {len(lines)} conformance check(s):\n  "
                + "\n  ".join(lines)
            )

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON data (what ``python -m zoo.testing --json`` prints)."""
        return {"family": self.family, "passed": self.passed, "seconds": self.seconds,
                "results": [dataclasses.asdict(r) for r in self.results]}

def _failure_line(family: str, result: Result) -> str:
    return f"{family}: check {result.check!r} failed: {result.message}"

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
    from zoo.plugin.registry import Registration, registry

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
