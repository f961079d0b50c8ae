"""From discrete levels to a continuous density and back: uniform dequantization and the
logit transform of Dinh et al. (2017).

The flow's density ``p`` lives on the image of the real line under the inverse logit map,
the open interval ``(lo, hi) = (-alpha L / (1 - 2 alpha), L (1 - alpha) / (1 - 2 alpha))``
per value (``L`` levels), a little wider than ``[0, L]``. It defines a discrete distribution:
``P(x)`` is the mass of ``x``'s bin, ``[x, x + 1)`` per value, the first and last bins
stretched to the interval's edges, so the ``P(x)`` sum to 1 and sampling is ``floor`` then
clipping (``quantize``). Because ``[x, x + 1)^D`` lies inside ``x``'s bin, Jensen's inequality
gives ``log P(x) >= E_u[log p(x + u)]`` for ``u ~ U[0, 1)^D``, and the importance-weighted
form with ``K`` draws, ``E[log (1/K) sum_k p(x + u_k)]``, is tighter and grows with ``K``
(Burda et al., 2016; Theis et al., 2016). So the NLL a dequantized model reports for
discrete data is an upper bound, never the exact value.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class LogitTransform:
    """``y in [0, L]`` to ``logit(alpha + (1 - 2 alpha) y / L)`` elementwise, with its log-det.

    ``alpha`` keeps the logit finite at the edges of the box, as in RealNVP's preprocessing.
    """

    def __init__(self, levels: int, alpha: float):
        self.levels, self.alpha = levels, alpha
        self.log_slope = math.log((1 - 2 * alpha) / levels)
        # The open interval the map sends onto the real line: the density's support.
        self.support = (-alpha * levels / (1 - 2 * alpha), levels * (1 - alpha) / (1 - 2 * alpha))

    def forward(self, y: Tensor) -> tuple[Tensor, Tensor]:
        """The logits and ``log|det|`` of the map, summed over all but the batch dimension."""
        p = self.alpha + (1 - 2 * self.alpha) / self.levels * y
        log_p, log_q = torch.log(p), torch.log1p(-p)
        logdet = (self.log_slope - log_p - log_q).flatten(1).sum(1)
        return log_p - log_q, logdet

    def inverse(self, h: Tensor) -> Tensor:
        return (torch.sigmoid(h) - self.alpha) * (self.levels / (1 - 2 * self.alpha))


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """``x + u`` with ``u ~ U[0, 1)`` per value (drawn on ``generator``'s device, then moved)."""
    device = generator.device if generator is not None else x.device
    u = torch.rand(x.shape, generator=generator, device=device, dtype=torch.float32)
    return x.to(torch.float32) + u.to(x.device)


def quantize(y: Tensor, levels: int) -> Tensor:
    """The level whose bin holds ``y``: ``floor(y)`` clipped to ``0..levels-1``, int64."""
    return torch.floor(y).clamp_(0, levels - 1).long()


def importance_weighted(log_densities: Tensor) -> Tensor:
    """``log (1/K) sum_k p_k`` from ``[K, B]`` log-densities at ``K`` uniform draws per example
    (the proposal's density is 1 on a unit bin, so the weights are the densities)."""
    return torch.logsumexp(log_densities, 0) - math.log(len(log_densities))
