"""Checks for the mistakes plugin authors really make, which the basic checks let through.

Each was found by writing a third-party family from the documentation and breaking it on
purpose (issue 15): ``create()`` ignoring config keys, ``sample()`` ignoring the temperature
or returning tensors that require grad, state set after construction that ``save -> load``
loses, a constant that is only right in one dimension, and ``log_prob`` changing its input.
"""

from __future__ import annotations

import dataclasses
import math
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import torch
from torch import Tensor

from zoo.config import _type_hints
from zoo.plugin.model import ZooModel
from zoo.testing.harness import (
    MAX_ENUMERATION,
    NotApplicable,
    Subject,
    _check_log_prob_tensor,
    _describe,
    _parse_or_fail,
    _registered,
    _show,
    fail,
)

#: Samples drawn at each temperature by ``temperature``, and the temperatures: far apart, so
#: that a fresh, nearly uniform model shows the effect too.
TEMPERATURE_SAMPLES = 2000
TEMPERATURES = (0.1, 1.0, 10.0)

#: Samples of the Gaussian proposal in the importance-sampling estimate of the normaliser.
IMPORTANCE_SAMPLES = 8000


# --- log_prob changing its input ---------------------------------------------------------------

def check_log_prob_keeps_input(s: Subject) -> None:
    """log_prob leaves the tensor it is given unchanged (no in-place edits of the input)."""
    model = s.model
    for grad in (False, True):
        x = s.data.clone()
        with torch.set_grad_enabled(grad):
            model.log_prob(x)
        if not torch.equal(x, s.data):
            changed = int((x != s.data).reshape(len(x), -1).any(1).sum())
            fail(f"log_prob changed its input ({changed} of {len(x)} examples differ "
                 f"afterwards{', with autograd on' if grad else ''}): an in-place operation "
                 "(x.sub_(...), x *= ..., x[...] = ...) on the tensor it was given; work on a "
                 "copy (x = x - mean)")


# --- sample() returning tensors that require grad ------------------------------------------------

def check_samples_detached(s: Subject) -> None:
    """sample() returns tensors that do not require grad (called with autograd on)."""
    with torch.enable_grad():
        x = s.model.sample(4, generator=s.generator(6))
    if isinstance(x, Tensor) and x.requires_grad:
        fail("sample() returned a tensor that requires grad: it keeps the autograd graph of "
             "the whole sampling pass alive and x.numpy() fails; decorate sample() with "
             "@torch.no_grad() (or return x.detach())")


# --- sample() ignoring the temperature ----------------------------------------------------------

def check_temperature(s: Subject) -> str:
    """sample(temperature=T) moves the samples the documented way: T < 1 more probable, T > 1 less.

    The temperatures are far apart (``TEMPERATURES``), so that even a fresh, nearly uniform
    model shows the effect: logits divided by 0.1 or by 10 differ by a factor of 100.
    """
    model, n = s.model, TEMPERATURE_SAMPLES
    draws: dict[float, Tensor] = {}
    stats: dict[float, tuple[float, float]] = {}
    for t in TEMPERATURES:
        x = model.sample(n, temperature=t, generator=s.generator(7))
        draws[t] = x
        with torch.no_grad():
            lp = model.log_prob(x).double()
        _check_log_prob_tensor(lp, n, f"log_prob of sample({n}, temperature={t})")
        stats[t] = lp.mean().item(), lp.var().item() / n
    low, mid, high = TEMPERATURES
    for t in (low, high):
        if torch.equal(draws[t], draws[mid]):
            fail(f"sample(temperature={t}) gave exactly the samples of temperature={mid} for "
                 "the same generator: sample() ignores temperature (it must scale the spread: "
                 "noise * temperature for a flow, logits / temperature for categoricals)")
    means = [stats[t][0] for t in TEMPERATURES]
    if max(stats[t][1] for t in TEMPERATURES) == 0 and max(means) - min(means) < 1e-9:
        return "the model is uniform (every sample equally probable): no temperature changes it"
    notes = []
    for a, b in ((low, mid), (mid, high), (low, high)):
        gap = stats[a][0] - stats[b][0]
        se = math.sqrt(stats[a][1] + stats[b][1])
        if gap < -3 * se:
            fail(f"samples at temperature {b} are more probable under the model than at "
                 f"{a} (mean log_prob {stats[b][0]:.4g} vs {stats[a][0]:.4g} nats, "
                 f"standard error {se:.2g}): temperature works the wrong way round (a higher "
                 "temperature must spread the samples out)")
        if (a, b) == (low, high) and gap <= 3 * se:
            fail(f"samples at temperature {low} are not more probable than at {high} (mean "
                 f"log_prob {stats[low][0]:.4g} vs {stats[high][0]:.4g} nats, standard error "
                 f"{se:.2g}): sample() does not scale the spread by the temperature (noise * "
                 "temperature for a flow, logits / temperature for categoricals)")
        notes.append(f"T={a}->{b}: mean log_prob falls by {gap:.3g} nats ({gap / se:.1f} se)")
    return "; ".join(notes)


# --- create() ignoring config keys ---------------------------------------------------------------

def check_config_keys(s: Subject) -> str:
    """Each config key changes the model create() builds, unless the family declares why not."""
    cfg = _parse_or_fail(s)
    inert = getattr(s.family, "inert_config_keys", None)
    declared = dict(inert(cfg) or {}) if inert is not None else {}
    base = s.fresh_model()
    raw = s.family.config_dict(cfg)
    hints = _type_hints(type(cfg))
    varied, fixed, ignored = [], [], []
    for f in dataclasses.fields(cfg):
        if f.name in ("shape", "levels") or not f.init:
            continue
        if f.name in declared:
            continue
        current = getattr(cfg, f.name)
        tried = False
        for value in _alternatives(hints.get(f.name), current, f.metadata):
            try:
                other = s.family.parse_config({**raw, f.name: value})
            except ValueError:
                continue
            if getattr(other, f.name) == current:
                continue
            tried = True
            if _differs(s, base, other):
                varied.append(f.name)
                break
        else:
            if tried:
                ignored.append(f"{f.name!r} (tried {_show(current)} and other values)")
            else:
                fixed.append(f.name)
    if ignored:
        fail(f"create() ignores config key(s) {', '.join(ignored)}: configs that differ only "
             "there give models with the same parameters, buffers, log_prob and samples "
             "(the model is built from defaults instead of the config passed to create()?); "
             "if a key legitimately changes nothing here (a training-only setting, a seed the "
             "config does not use), declare it in Family.inert_config_keys(config)")
    note = f"varied {', '.join(varied) or 'nothing'}"
    if declared:
        note += "; declared without effect: " + ", ".join(f"{k} ({v})" for k, v in declared.items())
    if fixed:
        note += f"; no other valid value tried for {', '.join(fixed)}"
    return note


def _alternatives(hint: Any, current: Any, meta: Any) -> list[Any]:
    """Other JSON values for a field of type ``hint``, most telling first."""
    low, high = (meta or {}).get("low"), (meta or {}).get("high")
    origin, args = get_origin(hint), get_args(hint)
    if origin is Literal:
        return [a for a in args if a != current]
    if origin in (typing.Union, types.UnionType) and args:
        inner = [a for a in args if a is not type(None)]
        if current is None:  # an optional setting that is off: switch it on
            return [v for v in (low, high, 1) if v is not None and (int in inner or float in inner)]
        return [None, *(v for a in inner for v in _alternatives(a, current, meta))]
    if hint is bool:
        return [not current]
    if hint is int and isinstance(current, int):
        return [current + 1, current - 1, current + 2, current - 2, current * 2]
    if hint is float and isinstance(current, (int, float)):
        return [v for v in (current * 2 if current else 0.5, current / 2, high, low, current + 1)
                if v is not None]
    if origin in (tuple, list) and isinstance(current, (tuple, list)):
        items = list(current)
        if items and all(isinstance(i, int) for i in items):
            options = [[*items, items[-1]], [i + 1 for i in items]]
            if len(items) > 1:
                options.append(items[:-1])
            return options
    return []


def _differs(s: Subject, base: ZooModel, config: Any) -> bool:
    """Whether the model built from ``config`` (same seed, same nudge) differs from ``base``."""
    try:
        model = Subject(s.family, config, s.given_data, seed=s.seed, perturb=s.perturb).fresh_model()
    except Exception:
        return True  # it builds differently: the key is used
    a, b = base.state_dict(), model.state_dict()
    if set(a) != set(b) or any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in a):
        return True
    try:
        with torch.no_grad():
            if not torch.equal(base.log_prob(s.data), model.log_prob(s.data)):
                return True
        return not torch.equal(base.sample(16, generator=s.generator(8)),
                               model.sample(16, generator=s.generator(8)))
    except Exception:
        return True


# --- state that save -> load loses ---------------------------------------------------------------

def check_state_after_reload(s: Subject) -> None:
    """A model used on data, saved and reloaded, scores new data and samples like the original."""
    from zoo.artifact import io as artifacts

    model = s.fresh_model()
    with torch.no_grad():
        model.log_prob(s.data)  # whatever initialises itself from data does it now
    fresh = s.data[: max(1, len(s.data) // 2)].flip(0)  # other data, other batch statistics
    with tempfile.TemporaryDirectory(prefix="zoo-testing-") as tmp, _registered(s.family):
        path = artifacts.save(model, Path(tmp) / "artifact")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed + 54321)
            loaded = artifacts.load(path)
            sampled_first = artifacts.load(path)
    hint = ("state set after construction (a data-dependent initialisation, a buffer "
            "registered with persistent=False, a tensor kept as a plain attribute) is not "
            "saved; keep it in a persistent buffer so the state_dict holds it")
    a = model.sample(8, generator=s.generator(9))
    b = sampled_first.sample(8, generator=s.generator(9))
    if not torch.equal(a, b):
        fail(f"a reloaded model that has not scored anything samples differently from the "
             f"original: {hint}")
    with torch.no_grad():
        after, before = loaded.log_prob(fresh), model.log_prob(fresh)
    if not torch.equal(before, after):
        gap = (before - after).abs().max().item()
        fail(f"after save -> load, log_prob of new data differs by up to {gap:.3g} nats: {hint}")
    mine, theirs = _all_state(model), _all_state(loaded)
    for name in sorted(set(mine) | set(theirs)):
        x, y = mine.get(name), theirs.get(name)
        if x is None or y is None or x.shape != y.shape or not torch.equal(x, y):
            fail(f"{name!r} differs between the original and the reloaded model: {hint}")


def _all_state(model: ZooModel) -> dict[str, Tensor]:
    """Parameters, every buffer (persistent or not) and tensors kept as plain attributes."""
    state = {f"parameter {k}": v.detach() for k, v in model.named_parameters()}
    state |= {f"buffer {k}": v for k, v in model.named_buffers()}
    for prefix, module in model.named_modules():
        for key, value in vars(module).items():
            if isinstance(value, Tensor) and not key.startswith("_"):
                state[f"attribute {prefix + '.' if prefix else ''}{key}"] = value.detach()
    return state


# --- a constant that is only right in one dimension ----------------------------------------------

def check_normaliser_in_any_dimension(s: Subject) -> str:
    """The model is normalised in the config's dimension and in another one (an importance-
    sampling estimate of the normaliser, or enumeration for discrete data)."""
    _parse_or_fail(s)
    notes = []
    subjects = [] if s.discrete else [s]
    other = _other_dimension(s)
    if other is not None:
        subjects.append(other)
    if not subjects:
        raise NotApplicable("the family accepts no other shape to check the normaliser in")
    for subject in subjects:
        where = f"shape {list(subject.shape)} (D = {subject.dims})"
        if subject.discrete:
            total, note = _enumerated_total(subject)
            if abs(total - 1) > 1e-5:
                fail(f"in {where} the probabilities of all inputs sum to {total:.6g}, not 1: a "
                     "constant that depends on the number of positions is wrong")
        else:
            total, se = _importance_estimate(subject)
            if abs(total - 1) > 5 * se + 0.01:
                fail(f"in {where} the density integrates to {total:.4g} ± {se:.2g} (importance "
                     f"sampling, {IMPORTANCE_SAMPLES} draws), not 1: a constant that depends on "
                     f"D is wrong (log(2*pi) written for D = 2 instead of D/2 * log(2*pi)?)")
            note = f"{total:.4f} ± {se:.2g}"
        notes.append(f"{where}: {note}")
    return "; ".join(notes)


def _other_dimension(s: Subject) -> Subject | None:
    """The subject in another shape the family accepts (the last size changed)."""
    raw = s.family.config_dict(s.config)
    shape = list(s.shape)
    # Continuous: well away from D = 2, where a constant for two dimensions is right.
    # Discrete: one more position, so that enumerating every input stays cheap.
    steps = (1, 2, -1) if s.discrete else (3, 1, 2, -1)
    for last in (shape[-1] + step for step in steps):
        if last < 1:
            continue
        candidate = [*shape[:-1], last]
        if s.discrete and s.levels ** math.prod(candidate) > MAX_ENUMERATION:
            continue
        try:
            config = s.family.parse_config({**raw, "shape": candidate})
        except ValueError:
            continue
        return Subject(s.family, config, None, seed=s.seed, perturb=s.perturb)
    return None


def _enumerated_total(s: Subject) -> tuple[float, str]:
    total_inputs = s.levels ** s.dims
    index = torch.arange(total_inputs)
    digits = (index[:, None] // s.levels ** torch.arange(s.dims)) % s.levels
    inputs = digits.reshape(total_inputs, *s.shape)
    try:
        with torch.no_grad():
            lp = torch.cat([s.model.log_prob(c) for c in inputs.split(8192)]).double()
    except Exception as exc:
        fail(f"scoring every input of shape {list(s.shape)} failed: {_describe(exc)}")
    total = torch.logsumexp(lp, 0).exp().item()
    return total, f"{total_inputs} inputs sum to 1 {total - 1:+.1e}"


def _importance_estimate(s: Subject) -> tuple[float, float]:
    """``E_q[p/q]`` with ``q`` a Gaussian fitted to the model's samples, widened (variance x2)
    so that its tails cover the model's; returns the estimate and its standard error."""
    model = s.model
    x = model.sample(4000, generator=s.generator(10)).double().reshape(4000, -1)
    mean = x.mean(0)
    cov = torch.cov(x.t()).reshape(s.dims, s.dims) * 2 + 1e-6 * torch.eye(s.dims, dtype=x.dtype)
    chol = torch.linalg.cholesky(cov)
    noise = torch.randn(IMPORTANCE_SAMPLES, s.dims, generator=s.generator(11), dtype=x.dtype)
    z = mean + noise @ chol.t()
    log_q = (-0.5 * (noise * noise).sum(1) - chol.diagonal().log().sum()
             - 0.5 * s.dims * math.log(2 * math.pi))
    try:
        with torch.no_grad():
            lp = model.log_prob(z.float().reshape(len(z), *s.shape)).double()
    except ValueError as exc:
        raise NotApplicable(f"log_prob refuses points of a Gaussian around its samples: "
                            f"{_describe(exc)}") from None
    log_w = lp - log_q
    top = log_w.max()
    w = (log_w - top).exp()
    estimate = w.mean()
    total = (estimate.log() + top).exp().item()
    se = (w.std() / math.sqrt(len(w)) / estimate).item() * total
    if not math.isfinite(total) or se > 0.1 * max(total, 1e-12):
        raise NotApplicable(f"the importance-sampling estimate is too noisy to judge "
                            f"({total:.3g} ± {se:.2g}): the density is far from Gaussian")
    return total, se
