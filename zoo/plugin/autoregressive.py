"""The base class of autoregressive models: discrete data drawn one position at a time.

A family whose model samples position by position (MADE, PixelCNN, a third party's) writes
two things: ``log_prob_checked`` (the exact log-probability of checked input) and ``draw``
(ancestral sampling in the model's own order, keeping known values). This class gives the
rest, once for every such family: the input checks, the sample count and temperature
checks, the generator handling, the naive reference sampler beside the fast one, and the
routing of ``given=``/``mask=`` to exact completion (``zoo.infer.completion``), which uses
``draw`` where the known positions come first in the model's order and an MCMC chain on
``log_prob`` elsewhere.
"""

from __future__ import annotations

import torch
from torch import Tensor

from zoo.checks import check_completion, check_discrete, check_sampling
from zoo.infer.completion import complete
from zoo.plugin.model import ZooModel

#: Known values of a completion, checked and broadcast to ``[n, *shape]``: ``(values, mask)``.
Known = tuple[Tensor, Tensor]


class AutoregressiveModel(ZooModel):
    """A model of integer data in ``0..levels-1`` of shape ``shape``, sampled in order.

    Subclasses set ``shape`` and ``levels`` (usually from their config) and implement
    ``log_prob_checked`` and ``draw``. The conformance kit's autoregressive checks (causality,
    completion, fast sampler equal to the naive one) apply to every subclass.
    """

    shape: tuple[int, ...]
    levels: int
    #: Networks whose orders the model mixes (an order-agnostic ensemble); each may declare
    #: its order with ``order(k)`` (see ``zoo.testing.protocols.Autoregressive``).
    ensemble_size: int = 1

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact ``log p(x)`` (or ``log p(x | context)``) in nats, ``[B]``, of integer data
        ``[B, *shape]``."""
        x = check_discrete(x, self.shape, self.levels).to(self.device)
        if context is None:
            return self.log_prob_checked(x)
        return self.log_prob_checked(x, context=context)

    def log_prob_checked(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """``log_prob`` of ``x`` already checked: int64 ``[B, *shape]`` on the model's device;
        ``context`` (conditional models only) is checked too, ``[B]`` or ``[B, d]``."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given: Tensor | None = None,
               mask: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        """Draw ``n`` samples ``[n, *shape]`` (int64) with the model's fast sampler.

        ``temperature`` divides every position's logits; ``generator`` makes the draw
        reproducible, and ``sample_naive`` with the same generator state gives the same
        samples. Completion: where ``mask`` (bool, ``shape`` or ``[n, *shape]``) is true the
        sample keeps ``given``'s value, and the rest follows the model's exact ``p(unknown |
        known)`` (``zoo.infer.completion.complete``): drawn in order when the known positions
        come first in the model's order, by an MCMC chain (Metropolis-Hastings + Gibbs)
        otherwise. ``context`` (conditional models): see ``ZooModel.sample``.
        """
        return self._sample_or_complete(n, temperature, generator, given, mask, context,
                                        fast=True)

    @torch.no_grad()
    def sample_naive(self, n: int, *, temperature: float = 1.0,
                     generator: torch.Generator | None = None, given: Tensor | None = None,
                     mask: Tensor | None = None, context: Tensor | None = None) -> Tensor:
        """The reference sampler: one full forward pass per position; same API as ``sample``."""
        return self._sample_or_complete(n, temperature, generator, given, mask, context,
                                        fast=False)

    def draw(self, n: int, temperature: float, generator: torch.Generator | None,
             known: Known | None, *, fast: bool, context: Tensor | None = None) -> Tensor:
        """Ancestral sampling of ``n`` examples in the model's order; where ``known`` (values
        and mask, ``[n, *shape]``) is given, its values are kept. ``fast`` picks the
        incremental sampler, otherwise one full forward pass per position; both must draw
        the same samples from the same generator state. Arguments are already checked;
        ``context`` (``[n]`` or ``[n, d]``) is passed only to conditional models."""
        raise NotImplementedError

    def _sample_or_complete(self, n: int, temperature: float,
                            generator: torch.Generator | None, given: Tensor | None,
                            mask: Tensor | None, context: Tensor | None, *,
                            fast: bool) -> Tensor:
        extra = {} if context is None else {"context": context}
        if given is None and mask is None:
            check_sampling(n, temperature)
            return self.draw(n, temperature, generator, None, fast=fast, **extra)
        if context is not None:
            return complete_in_context(self, given, mask, n, context, temperature, generator,
                                       fast=fast)

        def ancestral(n: int, given: Tensor, mask: Tensor, temperature: float,
                      generator: torch.Generator | None) -> Tensor:
            known = check_completion(given, mask, n, self.shape, self.levels)
            return self.draw(n, temperature, generator, known, fast=fast)

        return complete(self, given, mask, n, temperature=temperature, generator=generator,
                        ancestral=ancestral).samples


def complete_in_context(model: AutoregressiveModel, given: Tensor, mask: Tensor, n: int,
                        context: Tensor, temperature: float,
                        generator: torch.Generator | None, *, fast: bool) -> Tensor:
    """Completion of a conditional model: the examples that share a context are completed
    together, by ``complete`` on the model with that context bound (its exact ancestral
    path, or the chain on ``log_prob(x | context)``)."""
    check_sampling(n, temperature)
    known = check_completion(given, mask, n, model.shape, model.levels)
    if known is None:
        raise ValueError("completion needs both `given` (values) and `mask` (which are known)")
    values, where = known
    keys = context.reshape(n, -1)
    distinct, group = torch.unique(keys, dim=0, return_inverse=True)
    out = torch.empty(n, *model.shape, dtype=torch.long, device=model.device)
    for g in range(len(distinct)):
        rows = (group == g).nonzero().squeeze(1)
        bound = InContext(model, context[rows[:1]])

        def ancestral(m: int, given: Tensor, mask: Tensor, temperature: float,
                      generator: torch.Generator | None, bound: InContext = bound) -> Tensor:
            known = check_completion(given, mask, m, model.shape, model.levels)
            return model.draw(m, temperature, generator, known, fast=fast,
                              context=bound.rows(m))

        out[rows] = complete(bound, values[rows], where[rows], len(rows),
                             temperature=temperature, generator=generator,
                             ancestral=ancestral).samples.to(out.device)
    return out


class InContext:
    """A conditional model with one context bound: what ``complete`` and its chains score
    (``log_prob``, ``conditional_logits``) is then ``p(x | context)``; every other attribute
    is the model's."""

    def __init__(self, model: AutoregressiveModel, context: Tensor):
        self._model, self._context = model, context

    def rows(self, n: int) -> Tensor:
        return self._context.expand(n, *self._context.shape[1:])

    def log_prob(self, x: Tensor) -> Tensor:
        return self._model.log_prob(x, context=self.rows(x.shape[0]))

    def conditional_logits(self, x: Tensor, *args: object) -> Tensor:
        return self._model.conditional_logits(x, *args, context=self.rows(x.shape[0]))

    def __getattr__(self, name: str) -> object:
        return getattr(self._model, name)
