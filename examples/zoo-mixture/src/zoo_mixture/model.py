"""A Gaussian mixture: ``p(x) = sum_k pi_k N(x; mu_k, L_k L_k^T)``.

``log p(x) = logsumexp_k [log pi_k + log N(x; mu_k, L_k L_k^T)]`` with
``log N = -|L_k^{-1}(x - mu_k)|^2 / 2 - sum log diag L_k - D/2 log(2 pi)``. Every parameter
is unconstrained (mixture logits, means, the strictly lower part of ``L`` and the raw
diagonal, mapped through softplus plus ``min_scale``), so plain gradient descent trains it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.plugin import ZooModel, check_continuous, check_sampling
from zoo_mixture.family import GMMConfig


class GaussianMixture(ZooModel):
    """A mixture of Gaussians over float32 ``[B, D]`` vectors."""

    def __init__(self, config: GMMConfig):
        super().__init__()
        self.config = config
        k, d = config.components, config.shape[0]
        self.dim = d
        self.mixture_logits = nn.Parameter(torch.zeros(k))
        self.means = nn.Parameter(torch.randn(k, d) * config.init_spread)
        # softplus(raw) + min_scale = 1 at the start: unit-variance components.
        raw_one = math.log(math.expm1(1.0 - config.min_scale))
        self.raw_scales = nn.Parameter(torch.full((k, d), raw_one))
        self.lower = (nn.Parameter(torch.zeros(k, d, d)) if config.covariance == "full"
                      else None)

    def scale_tril(self) -> Tensor:
        """The Cholesky factors ``L_k``, ``[K, D, D]``."""
        diag = torch.diag_embed(F.softplus(self.raw_scales) + self.config.min_scale)
        if self.lower is None:
            return diag
        return diag + torch.tril(self.lower, -1)

    def log_prob(self, x: Tensor) -> Tensor:
        x = check_continuous(x, self.dim).to(self.means.dtype)
        tril = self.scale_tril()
        # One small triangular inverse per component, then a batched matmul: much faster than
        # a triangular solve per example.
        eye = torch.eye(self.dim, dtype=tril.dtype, device=tril.device).expand_as(tril)
        inverse = torch.linalg.solve_triangular(tril, eye, upper=False)  # [K, D, D]
        z = torch.einsum("kde,kbe->kbd", inverse, x[None] - self.means[:, None])  # [K, B, D]
        log_det = torch.diagonal(tril, dim1=-2, dim2=-1).log().sum(-1)  # [K]
        log_normal = (-0.5 * (z * z).sum(-1) - log_det[:, None]
                      - 0.5 * self.dim * math.log(2 * math.pi))  # [K, B]
        log_weights = torch.log_softmax(self.mixture_logits, 0)
        return torch.logsumexp(log_weights[:, None] + log_normal, 0)

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given=None, mask=None) -> Tensor:
        """``n`` draws; ``temperature`` scales every component's spread (not the weights)."""
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("gmm cannot complete partly known inputs")
        weights = torch.softmax(self.mixture_logits.double(), 0).cpu()
        component = torch.multinomial(weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        component, eps = component.to(self.means.device), eps.to(self.means.device)
        tril = self.scale_tril().double()[component]
        x = self.means.double()[component] + (tril @ (eps * temperature).unsqueeze(-1)).squeeze(-1)
        return x.float()
