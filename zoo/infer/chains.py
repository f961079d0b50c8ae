"""Markov chains over the unknown values of discrete data that leave ``p(unknown | known)^(1/T)``
invariant, built from ``log_prob`` (and, when the model gives them, its conditionals).

A sweep is two kernels, each of which keeps the target distribution:

- **independence Metropolis-Hastings** with the clamp-and-draw proposal ``q`` (the unknown
  values drawn in ensemble member 0's order from its conditionals, the known ones clamped;
  needs ``conditional_logits``): a global move that jumps between modes, which single-site
  updates cross only slowly. Accepted with ``min(1, w(x') / w(x))``, ``w = p^(1/T) / q``.
- **a Gibbs scan**: every unknown position in turn (backwards on odd sweeps) is redrawn from
  its exact full conditional ``p(x_d = c | x_-d) ∝ p(x with x_d = c)``, the ``C``
  alternatives scored in one batched ``log_prob``.

The chain starts from a draw of ``q`` (uniform values when the model gives no conditionals).
All functions work in place on flat ``x`` ``[n, D]`` with ``known`` ``[n, D]`` (bool).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from zoo.infer.protocols import DiscreteModel

#: Images per ``log_prob`` call while scoring alternatives (bounds the memory of a step).
MAX_BATCH = 8192


@dataclass
class ChainStats:
    """Work done by ``run``: images scored by ``log_prob``, and proposals accepted."""

    evaluations: int = 0
    proposals: int = 0
    accepted: int = 0


class Chain:
    """The chain for one batch of rows of ``model`` (flat shape ``[n, D]``)."""

    def __init__(self, model: DiscreteModel, known: Tensor, orders: Tensor | None,
                 temperature: float, generator: torch.Generator | None):
        self.model, self.known, self.temperature, self.generator = (model, known, temperature,
                                                                    generator)
        self.shape = tuple(model.config.shape)
        self.levels = int(model.config.levels)
        logits_of = getattr(model, "conditional_logits", None)
        self.order = orders[0].tolist() if orders is not None and callable(logits_of) else None
        self.ensemble = orders is not None and len(orders) > 1
        self.stats = ChainStats()

    def run(self, x: Tensor, sweeps: int) -> Tensor:
        """Start from a proposal, then ``sweeps`` times: one MH move and one Gibbs scan."""
        x, log_q = self.propose(x)
        log_w = self.log_p(x) - log_q if log_q is not None else None
        free = (~self.known).any(0).nonzero().squeeze(1).tolist()
        for sweep in range(sweeps):
            if log_w is not None and sweep > 0:
                x = self.metropolis(x, log_w)
            for d in (free if sweep % 2 == 0 else free[::-1]):
                self.gibbs_update(x, d)
            if log_w is not None and sweep + 1 < sweeps:
                log_w = self.log_p(x) - self.log_q(x)
        return x

    # --- the two kernels --------------------------------------------------------------------

    def metropolis(self, x: Tensor, log_w: Tensor) -> Tensor:
        """One independence Metropolis-Hastings step per row."""
        proposal, log_q = self.propose(x)
        log_w_new = self.log_p(proposal) - log_q
        u = torch.rand(len(x), generator=self.generator, dtype=torch.float64,
                       device=self._noise_device(x)).to(x.device)
        accept = torch.log(u) < (log_w_new - log_w)
        self.stats.proposals += len(x)
        self.stats.accepted += int(accept.sum())
        return torch.where(accept[:, None], proposal, x)

    def gibbs_update(self, x: Tensor, d: int) -> None:
        """Redraw position ``d`` of every row where it is unknown from its full conditional."""
        rows = (~self.known[:, d]).nonzero().squeeze(1)
        candidates = x[rows].unsqueeze(1).repeat(1, self.levels, 1)  # [r, C, D]
        candidates[:, :, d] = torch.arange(self.levels, device=x.device)
        lp = self.log_prob(candidates.reshape(-1, x.shape[1])).reshape(len(rows), self.levels)
        x[rows, d] = self.categorical(lp / self.temperature)

    # --- the proposal -----------------------------------------------------------------------

    @torch.no_grad()
    def propose(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """Clamp-and-draw in member 0's order: a new ``x`` and ``log q`` of it; uniform
        unknown values (and no ``log q``) when the model gives no conditionals."""
        if self.order is None:
            uniform = self.categorical(torch.zeros(*x.shape, self.levels, device=x.device))
            return torch.where(self.known, x, uniform), None
        x = x.clone()
        log_q = torch.zeros(len(x), dtype=torch.float64, device=x.device)
        for d in self.order:
            rows = (~self.known[:, d]).nonzero().squeeze(1)
            if not len(rows):
                continue
            logits = self.logits(x[rows])[:, :, d].double() / self.temperature
            value = self.categorical(logits)
            x[rows, d] = value
            log_q[rows] += torch.log_softmax(logits, 1).gather(1, value[:, None]).squeeze(1)
        return x, log_q

    @torch.no_grad()
    def log_q(self, x: Tensor) -> Tensor:
        """``log q(x)`` of the proposal: one pass of member 0's conditionals."""
        logits = self.logits(x).double() / self.temperature
        logp = torch.log_softmax(logits, 1).gather(1, x[:, None, :]).squeeze(1)
        return (logp * ~self.known).sum(1)

    def logits(self, x: Tensor) -> Tensor:
        """Member 0's conditional logits ``[n, C, D]`` of flat ``x``."""
        images = x.reshape(-1, *self.shape)
        method = self.model.conditional_logits  # type: ignore[attr-defined]
        logits = method(images, 0) if self.ensemble else method(images)
        return logits.reshape(len(x), self.levels, -1)

    # --- scoring and drawing ----------------------------------------------------------------

    def log_p(self, x: Tensor) -> Tensor:
        return self.log_prob(x) / self.temperature

    @torch.no_grad()
    def log_prob(self, flat: Tensor) -> Tensor:
        """``log_prob`` of flat images as float64, each distinct image scored once (chains on
        small models revisit the same states), in chunks of ``MAX_BATCH``."""
        if flat.shape[1] * math.log2(self.levels) > 62:
            distinct, inverse = flat, torch.arange(len(flat), device=flat.device)
        else:  # one int64 key per image: a 1-D unique is far cheaper than a row-wise one
            powers = self.levels ** torch.arange(flat.shape[1], device=flat.device)
            keys, inverse = torch.unique((flat * powers).sum(1), return_inverse=True)
            first = torch.empty(len(keys), dtype=torch.long, device=flat.device)
            first.scatter_(0, inverse, torch.arange(len(flat), device=flat.device))
            distinct = flat[first]
        images = distinct.reshape(-1, *self.shape)
        parts = [self.model.log_prob(chunk).double() for chunk in images.split(MAX_BATCH)]
        self.stats.evaluations += len(images)
        return torch.cat(parts)[inverse]

    def categorical(self, scores: Tensor) -> Tensor:
        """One draw per row of ``softmax(scores)`` over the last dimension (Gumbel-max)."""
        u = torch.rand(scores.shape, generator=self.generator, dtype=torch.float64,
                       device=self._noise_device(scores)).to(scores.device)
        return torch.argmax(scores.double() - torch.log(-torch.log(u)), dim=-1)

    def _noise_device(self, like: Tensor) -> torch.device:
        return self.generator.device if self.generator is not None else like.device
