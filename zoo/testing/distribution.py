"""Distribution tests: normalisation and samples against log_prob, by enumeration (discrete)
or on a grid (continuous, D <= 2), with the chi-square statistic they share."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.plugin.model import ZooModel
from zoo.testing.dependence import dependent_model
from zoo.testing.harness import (
    MAX_ENUMERATION,
    MIN_P_VALUE,
    TEST_SAMPLES,
    NotApplicable,
    Subject,
    _check_log_prob_tensor,
    _check_samples,
    fail,
)


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
    if 2 < s.dims <= MAX_IMPORTANCE_DIMS:
        return _importance_normalisation(s)
    grid = _density_grid(s)
    if not abs(grid.mass - 1) <= 0.01:
        fail(f"the density integrates to {grid.mass:.4f}, not 1 (within 1%), over the box "
             f"{grid.box} that holds all {TEST_SAMPLES} samples and a margin "
             "(a wrong log-det or base density, or log_prob not in nats?)")
    return f"integral {grid.mass:.5f} over {grid.box}"

#: Continuous normalisation by importance sampling up to this dimension (a grid above 2 is
#: too many points; above about 8 the weights of a Gaussian proposal grow too variable).
MAX_IMPORTANCE_DIMS = 8
IMPORTANCE_DRAWS = 200_000


def _importance_normalisation(s: Subject) -> str:
    """Continuous, 2 < D <= 8: the integral of the density as the mean of ``p(x) / q(x)``
    over draws of ``q``, an even mixture of two Gaussians (1.5 and 4 times the spread of
    the model's own samples, around their mean: the wide one keeps the weights bounded)."""
    samples = s.model.sample(TEST_SAMPLES, generator=s.generator(5))
    _check_samples(s, samples, TEST_SAMPLES, f"sample({TEST_SAMPLES})")
    flat = samples.reshape(len(samples), -1).double()
    mean, spread = flat.mean(0), flat.std(0).clamp_min(1e-3)
    g = s.generator(6)
    wide = torch.rand(IMPORTANCE_DRAWS, 1, generator=g, dtype=torch.float64) < 0.5
    scale = torch.where(wide, 4.0, 1.5) * spread
    x = mean + scale * torch.randn(IMPORTANCE_DRAWS, s.dims, generator=g, dtype=torch.float64)
    log_q = torch.logsumexp(torch.stack([
        _log_normal(x, mean, 1.5 * spread), _log_normal(x, mean, 4.0 * spread)]), 0) - math.log(2)
    with torch.no_grad():
        lp = torch.cat([s.model.log_prob(c.float().reshape(-1, *s.shape))
                        for c in x.split(16384)]).double()
    _check_log_prob_tensor(lp, len(x), "log_prob at the importance-sampling points")
    weights = (lp - log_q).exp()
    mass = weights.mean().item()
    stderr = (weights.std() / math.sqrt(len(weights))).item()
    if not stderr <= 0.01:
        fail(f"the importance-sampling estimate of the density's integral is too noisy "
             f"({mass:.4f} ± {stderr:.3g}): the density has mass far from its samples")
    if not abs(mass - 1) <= 0.02 + 3 * stderr:
        fail(f"the density integrates to {mass:.4f} ± {stderr:.4f}, not 1 (importance "
             f"sampling, {IMPORTANCE_DRAWS} draws): a wrong log-det or base density, or "
             "log_prob not in nats?")
    return f"integral {mass:.4f} ± {stderr:.4f} (importance sampling, {IMPORTANCE_DRAWS} draws)"


def _log_normal(x: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    return (-0.5 * ((x - mean) / std).square() - std.log()
            - 0.5 * math.log(2 * math.pi)).sum(1)


def check_samples_match_log_prob(s: Subject) -> str | None:
    """A chi-square test of 4000 samples against exact (discrete) or grid (continuous) probabilities."""
    note = ""
    if s.discrete:
        model, note = sampler_model(s)
        lp = _enumerated_log_probs(s, model)
        probs = torch.softmax(lp, 0)
        x = model.sample(TEST_SAMPLES, generator=s.generator(5))
        _check_samples(s, x, TEST_SAMPLES, f"sample({TEST_SAMPLES})")
        counts = torch.bincount(_flat_index(x.reshape(len(x), -1), s.levels),
                                minlength=len(probs))
        where = "the enumerated probabilities"
    else:
        grid = _density_grid(s)
        probs, counts, where = grid.bin_probs, grid.bin_counts, "the grid's cell probabilities"
    p_value, stat, dof = _chi_square(counts.double(), probs.double())
    if p_value < MIN_P_VALUE:
        on = f"; the model: {note}" if note else ""
        fail(f"{TEST_SAMPLES} samples do not follow {where}: chi-square {stat:.1f} on {dof} "
             f"degrees of freedom, p = {p_value:.2g} (sample() and log_prob() describe "
             f"different distributions{on})")
    return f"chi-square {stat:.1f} on {dof} degrees of freedom, p = {p_value:.2g}" + (
        f"; {note}" if note else "")

def sampler_model(s: Subject) -> tuple[ZooModel, str]:
    """The model the sampler checks of a discrete family draw from: the subject's, made
    strongly dependent (``zoo.testing.dependence``), and a note saying how dependent."""
    cached = getattr(s, "_sampler_model", None)
    if cached is None:
        if s.levels ** s.dims > MAX_ENUMERATION:
            cached = (s.model, "")  # the checks that need the exact distribution say so
        else:
            cached = dependent_model(s, _all_inputs(s))
        s._sampler_model = cached
    return cached

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

def _enumerated_log_probs(s: Subject, model: ZooModel | None = None) -> Tensor:
    inputs = _all_inputs(s)
    model = s.model if model is None else model
    with torch.no_grad():
        lp = torch.cat([model.log_prob(chunk) for chunk in inputs.split(8192)])
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
