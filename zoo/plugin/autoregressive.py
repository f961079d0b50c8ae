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

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, ``[B]``, of integer data ``[B, *shape]``."""
        return self.log_prob_checked(check_discrete(x, self.shape, self.levels).to(self.device))

    def log_prob_checked(self, x: Tensor) -> Tensor:
        """``log_prob`` of ``x`` already checked: int64 ``[B, *shape]`` on the model's device."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given: Tensor | None = None,
               mask: Tensor | None = None) -> Tensor:
        """Draw ``n`` samples ``[n, *shape]`` (int64) with the model's fast sampler.

        ``temperature`` divides every position's logits; ``generator`` makes the draw
        reproducible, and ``sample_naive`` with the same generator state gives the same
        samples. Completion: where ``mask`` (bool, ``shape`` or ``[n, *shape]``) is true the
        sample keeps ``given``'s value, and the rest follows the model's exact ``p(unknown |
        known)`` (``zoo.infer.completion.complete``): drawn in order when the known positions
        come first in the model's order, by an MCMC chain (Metropolis-Hastings + Gibbs)
        otherwise.
        """
        return self._sample_or_complete(n, temperature, generator, given, mask, fast=True)

    @torch.no_grad()
    def sample_naive(self, n: int, *, temperature: float = 1.0,
                     generator: torch.Generator | None = None, given: Tensor | None = None,
                     mask: Tensor | None = None) -> Tensor:
        """The reference sampler: one full forward pass per position; same API as ``sample``."""
        return self._sample_or_complete(n, temperature, generator, given, mask, fast=False)

    def draw(self, n: int, temperature: float, generator: torch.Generator | None,
             known: Known | None, *, fast: bool) -> Tensor:
        """Ancestral sampling of ``n`` examples in the model's order; where ``known`` (values
        and mask, ``[n, *shape]``) is given, its values are kept. ``fast`` picks the
        incremental sampler, otherwise one full forward pass per position; both must draw
        the same samples from the same generator state. Arguments are already checked."""
        raise NotImplementedError

    def _sample_or_complete(self, n: int, temperature: float,
                            generator: torch.Generator | None, given: Tensor | None,
                            mask: Tensor | None, *, fast: bool) -> Tensor:
        if given is None and mask is None:
            check_sampling(n, temperature)
            return self.draw(n, temperature, generator, None, fast=fast)

        def ancestral(n: int, given: Tensor, mask: Tensor, temperature: float,
                      generator: torch.Generator | None) -> Tensor:
            known = check_completion(given, mask, n, self.shape, self.levels)
            return self.draw(n, temperature, generator, known, fast=fast)

        return complete(self, given, mask, n, temperature=temperature, generator=generator,
                        ancestral=ancestral).samples
