"""Checks of conditional families (``Family.contexts``): each context gives a distribution,
the context changes it, samples follow it, the samplers agree and completion uses it.

The kit builds conditional variants of the config under test: ``classes: [a, b, c]`` for a
family that takes labels, ``context: [u, v]`` for one that takes vectors (three fixed
vectors are tried). A nudged fresh model barely depends on its context (families start the
context's weights at zero), and on such a model a sampler that ignores the context passes
any test; so, like ``zoo.testing.dependence`` does for positions, the kit first moves the
parameters by gradient ascent until the contexts tried are far apart: the mean KL divergence
between the distributions of two contexts at least ``TARGET_KL`` nats (exact by enumeration
for a tiny discrete config, from the model's samples otherwise).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.plugin.context import ContextSpec
from zoo.plugin.model import ZooModel
from zoo.testing.autoregressive import _check_conditional, check_causality
from zoo.testing.distribution import _all_inputs, check_normalisation
from zoo.testing.harness import (
    MAX_ENUMERATION,
    NotApplicable,
    Subject,
    _check_samples,
    _describe,
    _Failure,
    fail,
)

#: The classes and vector features of the conditional variants the kit builds.
CLASSES = ("a", "b", "c")
FEATURES = ("u", "v")
VECTORS = ((1.5, -1.0), (-1.0, 1.5), (0.0, 0.0))

#: Ascent stops when the mean KL divergence between two contexts' distributions reaches
#: this (nats), or after ``MAX_STEPS`` steps of Adam at ``LEARNING_RATE``.
TARGET_KL = 0.3
#: A step that takes the contexts further apart than this is undone and retried smaller:
#: contexts thousands of nats apart make densities too peaked to integrate on a grid.
MAX_KL = 5.0
MAX_STEPS = 150
LEARNING_RATE = 0.03

#: ``context_samples``: samples drawn per context, and the z-score the mean excess of
#: ``log p(x | own) - log p(x | other)`` must exceed. A sampler blind to the context has a
#: mean excess of exactly 0 in expectation (every context's samples come from one
#: distribution, and the excess sums to 0 over a balanced design), so it passes with
#: probability about 3e-7; a model whose contexts are ``TARGET_KL`` apart has an expected
#: z of ``0.3 / sd * sqrt(3000)``, about 15 to 60 on the first-party families.
CONTEXT_SAMPLES = 1000
MIN_Z = 5.0


class InContext:
    """A conditional model with one context bound (``None``: a label model's marginal):
    ``log_prob``, ``sample``, ``sample_naive`` and ``conditional_logits`` use it, so that
    the kit's unconditional checks run on ``p(x | context)`` unchanged."""

    def __init__(self, model: ZooModel, context: Tensor | None):
        self._model, self._context = model, context

    def _rows(self, n: int) -> dict[str, Tensor]:
        if self._context is None:
            return {}
        return {"context": self._context.expand(n, *self._context.shape[1:])}

    def log_prob(self, x: Tensor) -> Tensor:
        return self._model.log_prob(x, **self._rows(x.shape[0]))

    def sample(self, n: int, **kwargs: Any) -> Tensor:
        return self._model.sample(n, **kwargs, **self._rows(n))

    def sample_naive(self, n: int, **kwargs: Any) -> Tensor:
        return self._model.sample_naive(n, **kwargs, **self._rows(n))

    def conditional_logits(self, x: Tensor, *args: Any) -> Tensor:
        return self._model.conditional_logits(x, *args, **self._rows(x.shape[0]))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


@dataclass
class Case:
    """One kind of context: the conditional subject, its model made context-dependent, the
    contexts tried (checked tensors ``[1]`` or ``[1, d]``) and a note on the ascent."""

    kind: str
    subject: Subject
    model: ZooModel
    contexts: list[Tensor]
    note: str

    def bound(self, context: Tensor | None) -> Subject:
        """A subject whose model is ``p(x | context)`` (``None``: the label marginal)."""
        sub = Subject(self.subject.family, self.subject.raw, self.subject.given_data,
                      seed=self.subject.seed, perturb=self.subject.perturb,
                      min_dependence=self.subject.min_dependence)
        bound = self.model if context is None else InContext(self.model, context)
        sub.model = bound  # type: ignore[misc]  (cached_property: the instance value wins)
        sub._sampler_model = (bound, self.note)  # the sampler checks use it as it is
        return sub

    def label(self, context: Tensor | None) -> str:
        if context is None:
            return "the label marginal"
        if self.kind == "label":
            return f"label {int(context[0])}"
        return f"context {[round(v, 2) for v in context[0].tolist()]}"


def cases(s: Subject) -> list[Case]:
    """The conditional variants of the subject's config, one per kind the family declares
    (built once, cached); not applicable to an unconditional family."""
    kinds = [k for k in ("label", "vector") if k in tuple(getattr(s.family, "contexts", ()))]
    if not kinds:
        raise NotApplicable(f"family {s.name!r} declares no contexts (Family.contexts)")
    cached = getattr(s, "_context_cases", None)
    if cached is None:
        cached = [_case(s, kind) for kind in kinds]
        s._context_cases = cached
    return cached


def _case(s: Subject, kind: str) -> Case:
    base = s.family.config_dict(s.config)
    extra = {"classes": list(CLASSES)} if kind == "label" else {"context": list(FEATURES)}
    raw = {**base, "classes": [], "context": [], **extra}
    sub = Subject(s.family, raw, s.given_data, seed=s.seed, perturb=s.perturb,
                  min_dependence=s.min_dependence)
    try:
        model = sub.fresh_model()
    except Exception as exc:
        fail(f"building the {kind}-conditional model of {extra} failed: {_describe(exc)}")
    sub.model = model  # type: ignore[misc]  (the nudged model; the ascent works on a copy)
    spec = ContextSpec.of(model.config)
    if spec.kind != kind:
        fail(f"a config with {extra} builds a model whose context_spec is "
             f"{spec.describe()}, not a {kind} (does the Config inherit ContextFields?)")
    if kind == "label":
        contexts = [torch.tensor([k]) for k in range(len(CLASSES))]
    else:
        contexts = [torch.tensor([v], dtype=torch.float32) for v in VECTORS]
    model, note = _separated(sub, model, contexts)
    return Case(kind, sub, model, contexts, note)


def _mean_kl(s: Subject, model: ZooModel, contexts: list[Tensor],
             generator: torch.Generator | None) -> Tensor:
    """The mean over ordered pairs of contexts of KL(p_c || p_c'): exact over every input of
    a tiny discrete config, else from ``n`` samples of each context (not differentiated)."""
    if s.discrete and s.levels ** s.dims <= MAX_ENUMERATION:
        inputs = _all_inputs(s)
        lps = [model.log_prob(inputs, context=c.expand(len(inputs), *c.shape[1:])).double()
               for c in contexts]
        own = [(lp.exp() * lp).sum() for lp in lps]
        cross = [[(lps[i].exp() * lps[j]).sum() for j in range(len(lps))]
                 for i in range(len(lps))]
    else:
        n = 256
        with torch.no_grad():
            xs = [model.sample(n, generator=generator, context=c) for c in contexts]
        cross = [[model.log_prob(x, context=c.expand(n, *c.shape[1:])).double().mean()
                  for c in contexts] for x in xs]
        own = [cross[i][i] for i in range(len(xs))]
    k = len(contexts)
    pairs = [own[i] - cross[i][j] for i in range(k) for j in range(k) if i != j]
    return torch.stack(pairs).mean()


def _separated(s: Subject, model: ZooModel, contexts: list[Tensor]) -> tuple[ZooModel, str]:
    """The model, moved by gradient ascent until its contexts are ``TARGET_KL`` apart."""
    g = s.generator(40)
    with torch.no_grad():
        kl = _mean_kl(s, model, contexts, g).item()
    if kl >= TARGET_KL:
        return model, f"contexts {kl:.2f} nats apart (mean KL)"
    model = copy.deepcopy(model).eval()
    params = [p for p in model.parameters() if p.is_floating_point() and p.requires_grad]
    start, steps = kl, 0
    if params:
        optimiser = torch.optim.Adam(params, lr=LEARNING_RATE)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            try:
                saved = None
                while steps < MAX_STEPS:
                    objective = _mean_kl(s, model, contexts, g)
                    kl = objective.item()
                    if saved is not None and not (math.isfinite(kl) and kl <= MAX_KL):
                        # Overshot (a deep flow moves far in one step): back, smaller steps.
                        with torch.no_grad():
                            for p, old in zip(params, saved):
                                p.copy_(old)
                        optimiser = torch.optim.Adam(
                            params, lr=optimiser.param_groups[0]["lr"] / 4)
                        saved = None
                        continue
                    if kl >= TARGET_KL or not math.isfinite(kl):
                        break
                    steps += 1
                    saved = [p.detach().clone() for p in params]
                    optimiser.zero_grad()
                    (-objective).backward()
                    optimiser.step()
            except Exception as exc:
                fail(f"making the context matter (gradient ascent on the KL divergence between "
                     f"contexts) failed: {_describe(exc)}")
    model.eval()
    return model, f"contexts {start:.2f} nats apart (mean KL), raised to {kl:.2f} in {steps} steps"


def _each(s: Subject, check: Callable[[Case, Tensor | None], str | None],
          marginal: bool = False) -> str:
    """Run ``check`` for every context of every case; a failure names the context."""
    notes = []
    for case in cases(s):
        tried: list[Tensor | None] = list(case.contexts)
        if marginal and case.kind == "label":
            tried.append(None)
        for context in tried:
            try:
                note = check(case, context)
            except _Failure as exc:
                fail(f"{case.kind}-conditional model, {case.label(context)}: {exc}")
            if note:
                notes.append(f"{case.label(context)}: {note}")
    return "; ".join(notes[:4]) + ("; ..." if len(notes) > 4 else "")


def check_context_normalisation(s: Subject) -> str | None:
    """For every context tried (and a label model's marginal), the distribution sums or integrates to 1."""
    if not s.discrete and s.dims > 2:
        # Importance sampling (200000 draws a context): one context of each kind is enough.
        return _each(s, lambda case, c: check_normalisation(case.bound(c))
                     if c is case.contexts[0] else None)
    return _each(s, lambda case, c: check_normalisation(case.bound(c)), marginal=True)


def check_context_matters(s: Subject) -> str | None:
    """log_prob of the same data differs between contexts (a model that ignores its context fails)."""
    notes = []
    for case in cases(s):
        # The nudged model, before the ascent: the family's own wiring of the context.
        model, x = case.subject.model, case.subject.data
        with torch.no_grad():
            lps = torch.stack([model.log_prob(x, context=c.expand(len(x), *c.shape[1:]))
                               for c in case.contexts]).double()
        gap = (lps - lps[0]).abs().max().item()
        if not gap > 1e-6 * (1 + lps.abs().max().item()):
            fail(f"{case.kind}-conditional model: log_prob of {len(x)} examples is the same "
                 f"under every context tried (largest difference {gap:.3g}): the model ignores "
                 "its context (is it passed to the networks? for a nudged model every context "
                 "weight is non-zero)")
        notes.append(f"{case.kind}: log_prob moves by up to {gap:.3g} between contexts")
    return "; ".join(notes)


def check_context_samples(s: Subject) -> str | None:
    """Samples drawn for a context score higher under it than under the other contexts (z-test)."""
    notes = []
    for case in cases(s):
        n, excess = CONTEXT_SAMPLES, []
        with torch.no_grad():
            for i, c in enumerate(case.contexts):
                x = case.model.sample(n, generator=s.generator(41 + i), context=c)
                _check_samples(case.subject, x, n, f"sample({n}, context=...)")
                lps = torch.stack([case.model.log_prob(x, context=o.expand(n, *o.shape[1:]))
                                   for o in case.contexts]).double()
                others = torch.cat([lps[:i], lps[i + 1:]]).mean(0)
                excess.append(lps[i] - others)
        d = torch.cat(excess)
        mean, se = d.mean().item(), d.std().item() / math.sqrt(len(d))
        z = mean / se if se > 0 else (math.inf if mean > 0 else 0.0)
        if not z >= MIN_Z:
            fail(f"{case.kind}-conditional model: samples drawn for a context score no higher "
                 f"under it than under the other contexts (mean log p(x | own) - log p(x | "
                 f"other) = {mean:.3g} ± {se:.2g}, z = {z:.1f} < {MIN_Z}; the model's contexts "
                 f"are {case.note}): sample() ignores the context, or draws from another "
                 "context's distribution than log_prob describes")
        notes.append(f"{case.kind}: excess {mean:.3f} ± {se:.3f} nats (z = {z:.0f})")
    return "; ".join(notes)


def check_context_samplers(s: Subject) -> str | None:
    """Autoregressive: sample() draws what sample_naive() draws, in every context and mixed."""
    if not s.autoregressive:
        raise NotApplicable("the fast and naive samplers are compared for autoregressive families")
    if not callable(getattr(cases(s)[0].model, "sample_naive", None)):
        raise NotApplicable("the model has no sample_naive (the reference sampler)")
    n = 64

    def compare(case: Case, context: Tensor | None) -> None:
        use = context if context is not None else torch.cat(case.contexts).repeat_interleave(
            math.ceil(n / len(case.contexts)), 0)[:n]
        for temperature in (1.0, 0.7):
            fast = case.model.sample(n, generator=s.generator(50), context=use,
                                     temperature=temperature)
            naive = case.model.sample_naive(n, generator=s.generator(50), context=use,
                                            temperature=temperature)
            if not torch.equal(fast, naive):
                rows = int((fast != naive).reshape(n, -1).any(1).sum())
                fail(f"sample() and sample_naive() from the same generator state differ in "
                     f"{rows} of {n} samples (temperature {temperature}): the fast sampler "
                     "does not apply the context as the model's forward pass does")

    for case in cases(s):
        for context in [*case.contexts, None]:  # None: one context per sample
            try:
                compare(case, context)
            except _Failure as exc:
                which = "one context per sample" if context is None else case.label(context)
                fail(f"{case.kind}-conditional model, {which}: {exc}")
    return f"{n} samples per context and with one context per sample, temperatures 1 and 0.7"


def check_context_causality(s: Subject) -> str | None:
    """Autoregressive: with a context, each position's logits ignore it and later positions."""
    if not (s.discrete and s.autoregressive):
        raise NotApplicable("causality is checked for discrete autoregressive families")
    return _each(s, lambda case, c: check_causality(case.bound(c))
                 if c is case.contexts[0] else None)


def check_context_completion(s: Subject) -> str | None:
    """Autoregressive: completion in a context follows the exact p(unknown | known, context)."""
    if not (s.discrete and s.autoregressive):
        raise NotApplicable("exact completion is checked for discrete autoregressive families")

    def complete(case: Case, context: Tensor | None) -> str | None:
        if context is not case.contexts[1]:
            return None  # one context per kind (not the first: it is not a default)
        sub = case.bound(context)
        return _check_conditional(sub, sub.model)

    return _each(s, complete)
