"""The suite: every check by name, in the order they run, and the two ways to run them."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from torch import Tensor

from zoo.plugin.family import Family
from zoo.testing.authoring import (
    check_config_keys,
    check_log_prob_keeps_input,
    check_normaliser_in_any_dimension,
    check_samples_detached,
    check_state_after_reload,
    check_temperature,
)
from zoo.testing.autoregressive import check_causality, check_completion
from zoo.testing.buffers import check_derived_buffers
from zoo.testing.common import (
    check_bad_input,
    check_build,
    check_config_roundtrip,
    check_config_validation,
    check_contract,
    check_log_prob,
    check_log_prob_gradients,
    check_sample,
    check_save_load,
)
from zoo.testing.conditional import (
    check_context_causality,
    check_context_completion,
    check_context_matters,
    check_context_normalisation,
    check_context_samplers,
    check_context_samples,
)
from zoo.testing.distribution import check_normalisation, check_samples_match_log_prob
from zoo.testing.flows import check_invertibility, check_log_det
from zoo.testing.harness import MIN_DEPENDENCE, Check, Report, Result, Subject


def family_checks(family: Family | str | type, config: Mapping[str, Any] | Any | None = None,
                  data: Tensor | None = None, *, seed: int = 0, perturb: float = 0.1,
                  skip: Collection[str] = (),
                  min_dependence: float = MIN_DEPENDENCE) -> list[Check]:
    """One ``Check`` per conformance check of ``family``, sharing one lazily built model.

    ``family`` is a ``Family`` instance, a ``Family`` subclass or the name of an installed
    family. ``config`` defaults to the smallest complete one (``shape [2]``, or ``shape
    [1, 2, 2]`` with ``levels 3``); discrete families need a tiny one for enumeration.
    ``data`` is a small batch of valid examples (default: random ones). ``skip`` names checks
    the caller deliberately leaves out. Before the sampler checks of a discrete family the
    kit makes the model dependent across positions (total variation between its joint and
    the product of its marginals at least ``min_dependence``; 0 turns this off).
    """
    unknown = set(skip) - set(CHECKS)
    if unknown:
        raise ValueError(f"unknown check(s) to skip: {', '.join(sorted(unknown))}; "
                         f"the checks are {', '.join(CHECKS)}")
    subject = Subject(_resolve(family), config, data, seed=seed, perturb=perturb,
                      min_dependence=min_dependence)
    return [Check(name, (fn.__doc__ or "").strip().splitlines()[0], subject, fn)
            for name, fn in CHECKS.items() if name not in skip]

def check_family(family: Family | str | type, config: Mapping[str, Any] | Any | None = None,
                 data: Tensor | None = None, *, seed: int = 0, perturb: float = 0.1,
                 skip: Collection[str] = (), raise_on_failure: bool = True,
                 min_dependence: float = MIN_DEPENDENCE) -> Report:
    """Run every check on ``family``; raise ``ConformanceError`` listing the failures.

    Arguments as for ``family_checks``. Returns the ``Report`` (with per-check timings); with
    ``raise_on_failure=False`` it returns it even when checks failed.
    """
    checks = family_checks(family, config, data, seed=seed, perturb=perturb, skip=skip,
                           min_dependence=min_dependence)
    results = [c.run() for c in checks]
    results += [Result(name, "skipped", "left out by the caller") for name in CHECKS
                if name in skip]
    report = Report(checks[0].subject.name if checks else str(family), results)
    if raise_on_failure:
        report.raise_for_failures()
    return report

def _resolve(family: Family | str | type) -> Family:
    if isinstance(family, str):
        from zoo.plugin.registry import get_family

        return get_family(family)
    if isinstance(family, type):
        return family()
    return family

#: Every check, in the order they run.
CHECKS: dict[str, Callable[[Subject], str | None]] = {
    "contract": check_contract,
    "config_roundtrip": check_config_roundtrip,
    "config_validation": check_config_validation,
    "build": check_build,
    "log_prob_keeps_input": check_log_prob_keeps_input,
    "log_prob": check_log_prob,
    "log_prob_gradients": check_log_prob_gradients,
    "sample": check_sample,
    "samples_detached": check_samples_detached,
    "temperature": check_temperature,
    "bad_input": check_bad_input,
    "derived_buffers": check_derived_buffers,
    "save_load": check_save_load,
    "state_after_reload": check_state_after_reload,
    "config_keys": check_config_keys,
    "normalisation": check_normalisation,
    "samples_match_log_prob": check_samples_match_log_prob,
    "normaliser_in_any_dimension": check_normaliser_in_any_dimension,
    "causality": check_causality,
    "completion": check_completion,
    "invertibility": check_invertibility,
    "log_det": check_log_det,
    "context_matters": check_context_matters,
    "context_normalisation": check_context_normalisation,
    "context_samples": check_context_samples,
    "context_samplers": check_context_samplers,
    "context_causality": check_context_causality,
    "context_completion": check_context_completion,
}
