"""Completion: samples of ``p(unknown | known)`` for any discrete model, from ``log_prob`` alone.

Drawing the unknown values in the model's order with the known ones clamped (what an
autoregressive sampler does when handed ``given`` and ``mask``) is exact only when every
known position comes before every unknown one in that order: otherwise a later known value
never informs an earlier draw. ``complete`` therefore picks, row by row:

- **ancestral**: the known set is a prefix of the model's order (of *every* member's order
  for an ensemble, whose sampler weights the members by ``p_k(known)``): the family's own
  sampler, exact and fast.
- **gibbs**: anything else. A Markov chain that leaves the conditional invariant and
  converges to it (``zoo.infer.chains``): each sweep is an independence Metropolis-Hastings move
  with the clamp-and-draw proposal (a global jump between modes), then a Gibbs scan over the
  unknown positions, each redrawn from its exact full conditional ``p(x_d = c | x_-d)``,
  the ``C`` alternatives of one position scored in one batched ``log_prob``.

Families declare their order through the autoregressive protocol the conformance kit
checks (``order()``/``order(k)`` and ``ensemble_size``; a model with ``conditional_logits``
but no ``order`` is in raster order). A model that declares neither is always completed by
Gibbs sweeps, which need nothing but ``log_prob``.

``temperature`` T makes the target ``p(unknown | known)^(1/T)`` (normalised); the
ancestral path is used only at T = 1, where the two agree.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import Tensor

from zoo.checks import check_completion, check_sampling
from zoo.infer.chains import Chain
from zoo.infer.protocols import DiscreteModel

#: Gibbs sweeps by default: with it, the total variation to the exact conditional is at
#: most 0.02 on the tiny test models (see benchmarks/bench_completion.py for the table).
DEFAULT_SWEEPS = 16

Method = Literal["auto", "ancestral", "gibbs"]

#: ``ancestral(n, given, mask, temperature, generator)`` -> samples ``[n, *shape]``.
Ancestral = Callable[[int, Tensor, Tensor, float, "torch.Generator | None"], Tensor]


@dataclass(frozen=True)
class CompletionRecord:
    """What one call of ``complete`` did: the method of each row and the work it took."""

    method: str  #: "ancestral", "gibbs", or "ancestral+gibbs" when rows differ
    rows: dict[str, int] = field(default_factory=dict)  #: completions made by each method
    sweeps: int = 0  #: Gibbs sweeps run (0 when no row needed them)
    positions: int = 0  #: unknown positions updated per sweep
    evaluations: int = 0  #: images scored by ``log_prob`` during the sweeps
    seconds: float = 0.0
    reason: str = ""  #: why this method

    def line(self) -> str:
        """One line for the command line."""
        parts = [f"completion: {self.method}"]
        if self.sweeps:
            parts.append(f"{self.sweeps} Gibbs sweeps over {self.positions} unknown positions")
        if len(self.rows) > 1:
            parts.append(", ".join(f"{k} for {v}" for k, v in self.rows.items()))
        parts.append(f"{self.seconds:.2f} s")
        return f"{'; '.join(parts)} ({self.reason})"

    def as_dict(self) -> dict[str, Any]:
        return {"method": self.method, "rows": dict(self.rows), "sweeps": self.sweeps,
                "positions": self.positions, "evaluations": self.evaluations,
                "seconds": self.seconds, "reason": self.reason}


@dataclass(frozen=True)
class Completion:
    """Completed samples ``[n, *shape]`` and the record of how they were made."""

    samples: Tensor
    record: CompletionRecord


def declared_orders(model: DiscreteModel) -> Tensor | None:
    """The generation order of each ensemble member, ``[K, D]``, or None if undeclared."""
    shape = tuple(model.config.shape)
    dims = math.prod(shape)
    size = getattr(model, "ensemble_size", 1)
    size = int(size) if isinstance(size, (int, Tensor)) and not isinstance(size, bool) else 1
    method = getattr(model, "order", None)
    if callable(method):
        orders = [method(k) if size > 1 else method() for k in range(max(size, 1))]
        stacked = torch.stack([torch.as_tensor(o).reshape(-1).long().cpu() for o in orders])
        if stacked.shape[1] != dims:
            raise ValueError(f"model.order() gives {stacked.shape[1]} positions, the model "
                             f"has {dims}")
        return stacked
    if callable(getattr(model, "conditional_logits", None)):
        return torch.arange(dims).expand(max(size, 1), dims)  # the protocol's raster default
    return None


def known_is_prefix(known: Tensor, orders: Tensor | None) -> Tensor:
    """Per row of flat ``known`` ``[n, D]``: is the known set a prefix of every order?"""
    if orders is None:
        every = known.all(1) | ~known.any(1)  # nothing or everything known: trivially a prefix
        return every
    # Read in order k, the known flags of a prefix never go from false back to true.
    in_order = known[:, orders.to(known.device)]  # [n, K, D]
    return (in_order[..., 1:] <= in_order[..., :-1]).all(-1).all(-1)


def complete(model: DiscreteModel, given: Tensor, mask: Tensor, n: int | None = None, *,
             temperature: float = 1.0, generator: torch.Generator | None = None,
             sweeps: int | None = None, method: Method = "auto",
             ancestral: Ancestral | None = None) -> Completion:
    """``n`` samples of ``p(x[~mask] | x[mask] = given[mask])`` under ``model``.

    ``given`` and ``mask`` (bool, true = known) have the model's shape or ``[n, *shape]``
    (one mask per example). ``n`` defaults to their batch size (1 when unbatched).
    ``sweeps`` is the Gibbs work (default ``DEFAULT_SWEEPS``); ``method`` forces
    ``"gibbs"`` (every row) or ``"ancestral"`` (refused unless the known set is a prefix of
    the model's order); ``ancestral`` is the family's clamp-and-draw sampler (default:
    ``model.sample(n, given=, mask=)``; a family whose ``sample`` calls ``complete`` passes
    its own). Returns the samples and a ``CompletionRecord``.
    """
    start = time.perf_counter()
    shape, levels = _discrete_shape(model)
    if getattr(model, "likelihood_bound", False):  # before its log_prob refuses int levels
        family = getattr(model, "family", "") or type(model).__name__
        raise ValueError(f"{family} cannot complete partly known inputs: it is not "
                         "autoregressive, and scores levels only through a dequantization "
                         "bound; use an autoregressive model (pixelcnn, made)")
    if n is None:
        n = given.shape[0] if isinstance(given, Tensor) and given.dim() > len(shape) else 1
    check_sampling(n, temperature)
    checked = check_completion(given, mask, n, shape, levels)
    if checked is None:
        raise ValueError("completion needs both `given` (values) and `mask` (which are known)")
    if method not in ("auto", "ancestral", "gibbs"):
        raise ValueError(f"method must be auto, ancestral or gibbs, got {method!r}")
    sweeps = DEFAULT_SWEEPS if sweeps is None else sweeps
    if isinstance(sweeps, bool) or not isinstance(sweeps, int) or sweeps < 1:
        raise ValueError(f"sweeps must be a positive integer, got {sweeps!r}")
    device = model.device
    values = checked[0].reshape(n, -1).to(device)
    known = checked[1].reshape(n, -1).to(device)
    was_training = model.training
    model.eval()  # no dropout, and an ensemble scores its mixture, not one sampled member
    try:
        return _complete(model, values, known, n, shape, levels, temperature, generator,
                         sweeps, method, ancestral, start)
    finally:
        model.train(was_training)


def _complete(model: DiscreteModel, values: Tensor, known: Tensor, n: int, shape: tuple[int, ...],
              levels: int, temperature: float, generator: torch.Generator | None, sweeps: int,
              method: str, ancestral: Ancestral | None, start: float) -> Completion:
    orders = declared_orders(model)
    full = known.all(1)  # nothing to draw: the answer is the given row itself
    prefix = known_is_prefix(known, orders) & ~full
    if method == "gibbs" or temperature != 1:
        prefix = torch.zeros_like(prefix)
    if method == "ancestral" and not bool((prefix | full).all()):
        raise ValueError("method 'ancestral' is exact only when the known values come first "
                         "in the model's order; use 'auto' or 'gibbs'")
    reason = ("every value is known" if bool(full.all())
              else _reason(prefix | full, orders, temperature, method))
    out = values.clone()
    rows: dict[str, int] = {}
    draw = ancestral or _family_sampler(model)
    if bool(prefix.any()):
        idx = prefix.nonzero().squeeze(1)
        part = draw(len(idx), values[idx].reshape(-1, *shape), known[idx].reshape(-1, *shape),
                    1.0, generator)
        out[idx] = part.reshape(len(idx), -1).to(values.device)
        rows["ancestral"] = len(idx)
    ran = positions = evaluations = 0
    if not bool((prefix | full).all()):
        idx = (~prefix & ~full).nonzero().squeeze(1)
        chain = Chain(model, known[idx], orders, temperature, generator)
        out[idx] = chain.run(values[idx], sweeps)
        positions = int((~known[idx]).any(0).sum())
        evaluations, ran = chain.stats.evaluations, sweeps
        rows["gibbs"] = len(idx)
    record = CompletionRecord(method="+".join(rows) or "given", rows=rows, sweeps=ran,
                              positions=positions, evaluations=evaluations,
                              seconds=time.perf_counter() - start, reason=reason)
    return Completion(out.reshape(n, *shape), record)


def _discrete_shape(model: DiscreteModel) -> tuple[tuple[int, ...], int]:
    config = getattr(model, "config", None)
    levels = getattr(config, "levels", None)
    if levels is None:
        family = getattr(model, "family", "") or type(model).__name__
        raise ValueError(f"completion needs a model of discrete data; {family!r} models "
                         "continuous data, and completing given coordinates of it is not "
                         "supported")
    return tuple(config.shape), int(levels)


def _reason(prefix: Tensor, orders: Tensor | None, temperature: float, method: str) -> str:
    if method == "gibbs":
        return "Gibbs sweeps requested"
    if temperature != 1:
        return "temperature != 1 targets p(unknown | known)^(1/T): Gibbs sweeps"
    if bool(prefix.all()):
        return "the known values come first in the model's order: exact ancestral sampling"
    if orders is None:
        return "the model declares no generation order: Gibbs sweeps on log_prob"
    members = "every member's order" if len(orders) > 1 else "the model's order"
    return f"the known values are not a prefix of {members}: Gibbs sweeps on log_prob"


def _family_sampler(model: DiscreteModel) -> Ancestral:
    def draw(n: int, given: Tensor, mask: Tensor, temperature: float,
             generator: torch.Generator | None) -> Tensor:
        return model.sample(n, temperature=temperature, generator=generator, given=given,
                            mask=mask)
    return draw
