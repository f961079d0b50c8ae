"""Checks of the autoregressive protocol: causality (by gradients and by perturbation) and
completion from the exact conditional."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.plugin.model import ZooModel
from zoo.testing.distribution import _chi_square, _flat_index, sampler_model
from zoo.testing.harness import (
    MAX_ENUMERATION,
    MIN_P_VALUE,
    TEST_SAMPLES,
    NotApplicable,
    Subject,
    _check_samples,
    _describe,
    _Failure,
    fail,
)


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
    """sample(given=, mask=) keeps known values and follows the exact conditional, for a known
    prefix of the model's order and for a known set that is not one."""
    n = 32
    # Discrete: the strongly dependent model, or a sampler blind to the known values passes.
    model = sampler_model(s)[0] if s.discrete and s.autoregressive else s.model
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
    if s.discrete and s.autoregressive:
        return _check_conditional(s, model)
    return None

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
    """Completions follow p(rest | known part): with the first half of the order known (the
    family's ancestral fast path), and with the last half known (not a prefix: a sampler that
    only clamps the known values and draws the rest in order gets this one wrong)."""
    order = _order(s, model, 0)
    half = s.dims // 2
    if s.levels ** (s.dims - half) > MAX_ENUMERATION:
        return "known values kept (config too large for the exact conditional)"
    prefix = _conditional_p_value(s, model, order[:half], 12)
    notes = []
    if _ensemble_size(model) == 1:
        if prefix < MIN_P_VALUE:
            fail(f"completions of a known prefix do not follow the model's conditional "
                 f"distribution (p = {prefix:.2g})")
        notes.append(f"conditional of a known prefix: p = {prefix:.2g}")
    suffix = _conditional_p_value(s, model, order[s.dims - half:], 13) if half else 1.0
    if suffix < MIN_P_VALUE:
        fail(f"completions with the last half of the model's order known do not follow the "
             f"model's conditional distribution (chi-square p = {suffix:.2g}): drawing the "
             "unknown values in order with the known ones clamped is exact only when the "
             "known values come first; complete with zoo.infer.completion.complete(model, given, "
             "mask, n, ...) from sample(given=, mask=) (see docs/plugins.md)")
    notes.append(f"conditional of a known suffix: p = {suffix:.2g}")
    return "known values kept; " + "; ".join(notes)

def _conditional_p_value(s: Subject, model: ZooModel, known_positions: Tensor,
                         seed: int) -> float:
    """Chi-square p-value of ``TEST_SAMPLES`` completions of data row 0, with
    ``known_positions`` known, against the conditional enumerated from ``log_prob``."""
    # Every completion: the unknown positions take all level combinations.
    x0 = s.data[0].reshape(-1)
    mask = torch.zeros(s.dims, dtype=torch.bool)
    mask[known_positions] = True
    unknown_positions = (~mask).nonzero().squeeze(1)
    count = s.levels ** len(unknown_positions)
    digits = (torch.arange(count)[:, None] // s.levels ** torch.arange(len(unknown_positions)))
    candidates = x0.expand(count, s.dims).clone()
    candidates[:, unknown_positions] = digits % s.levels
    with torch.no_grad():
        lp = model.log_prob(candidates.reshape(-1, *s.shape)).double()
    out = model.sample(TEST_SAMPLES, generator=s.generator(seed), given=x0.reshape(s.shape),
                       mask=mask.reshape(s.shape))
    flat = out.reshape(len(out), -1)
    if not torch.equal(flat[:, mask], x0[mask].expand(len(flat), -1)):
        fail("completion changed known values")
    index = {int(i): j for j, i in enumerate(_flat_index(candidates, s.levels))}
    counts = torch.zeros(len(candidates), dtype=torch.float64)
    for i in _flat_index(flat, s.levels).tolist():
        counts[index[i]] += 1  # every sample keeps the known values, so it is a candidate
    p_value, _, _ = _chi_square(counts, torch.softmax(lp, 0))
    return p_value
