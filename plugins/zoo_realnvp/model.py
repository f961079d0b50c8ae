"""RealNVP: affine coupling layers with binary masks and a standard-normal base.

One coupling layer with mask ``b`` (1 = passed through, 0 = transformed)::

    y = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x)),    log|det J| = sum((1-b) * s(b*x))

Because ``s`` and ``t`` only see ``b*x``, which the layer leaves unchanged, the inverse is
explicit: ``x = b*y + (1-b) * (y - t(b*y)) * exp(-s(b*y))``.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.model import ZooModel, check_continuous, check_sampling
from zoo_realnvp.family import RealNVPConfig

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


def coupling_masks(config: RealNVPConfig) -> Tensor:
    """One binary mask per coupling: alternating halves, or random halves (fixed seed)."""
    dim = config.shape[0]
    if config.masks == "alternate":
        base = (torch.arange(dim) % 2).float()
        return torch.stack([base if k % 2 == 0 else 1 - base for k in range(config.couplings)])
    g = torch.Generator().manual_seed(config.mask_seed)
    masks = torch.zeros(config.couplings, dim)
    for k in range(config.couplings):
        masks[k, torch.randperm(dim, generator=g)[: dim // 2]] = 1.0
    return masks


class AffineCoupling(nn.Module):
    """One coupling layer; ``s`` and ``t`` come from one MLP with a zero-initialised output.

    The mask is stored, and so are the index lists it implies: the layer gathers the kept
    coordinates (the non-zero part of ``b*x``) and rewrites only the free ones, which is
    the formula above with fewer operations per step.
    """

    def __init__(self, mask: Tensor, hidden: int, layers: int, activation: str, bound: float):
        super().__init__()
        self.register_buffer("mask", mask.clone())
        self.register_buffer("kept", torch.nonzero(mask > 0.5).flatten())
        self.register_buffer("free", torch.nonzero(mask < 0.5).flatten())
        widths = [len(self.kept)] + [hidden] * layers
        blocks: list[nn.Module] = []
        for w_in, w_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
        out = nn.Linear(hidden, 2 * len(self.free))
        # Zero output: every coupling starts as the identity, so training starts from N(0, I).
        nn.init.zeros_(out.weight)
        nn.init.zeros_(out.bias)
        self.net = nn.Sequential(*blocks, out)
        self.bound = bound

    def scale_shift(self, x: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = self.net(x.index_select(1, self.kept)).chunk(2, dim=-1)
        # Soft clamp: log-scales stay in (-bound, bound), with a gradient everywhere.
        return self.bound * torch.tanh(raw), t

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction: ``(y, log|det dy/dx|)``."""
        s, t = self.scale_shift(x)
        y_free = x.index_select(1, self.free) * torch.exp(s) + t
        return x.index_copy(1, self.free, y_free), s.sum(-1)

    def inverse(self, y: Tensor) -> Tensor:
        s, t = self.scale_shift(y)
        x_free = (y.index_select(1, self.free) - t) * torch.exp(-s)
        return y.index_copy(1, self.free, x_free)


class RealNVP(ZooModel):
    """A RealNVP flow over ``[B, D]`` vectors with a standard-normal base distribution."""

    def __init__(self, config: RealNVPConfig):
        super().__init__()
        self.config = config
        self.dim = config.shape[0]
        self.layers = nn.ModuleList(
            AffineCoupling(mask, config.hidden, config.layers, config.activation,
                           config.scale_bound)
            for mask in coupling_masks(config)
        )

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` and ``log|det df/dx|`` for each example."""
        logdet = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, ld = layer(x)
            logdet = logdet + ld
        return x, logdet

    def invert(self, z: Tensor) -> Tensor:
        """``x = f^{-1}(z)``: map latent points back to data space."""
        for layer in reversed(self.layers):
            z = layer.inverse(z)
        return z

    def log_prob(self, x: Tensor) -> Tensor:
        check_continuous(x, self.dim)
        z, logdet = self(x.to(self._dtype()))
        base = -0.5 * (z * z).sum(-1) - 0.5 * self.dim * math.log(2 * math.pi)
        return base + logdet

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given=None, mask=None) -> Tensor:
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("realnvp cannot complete partly known inputs (it is not autoregressive)")
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=self._dtype())
        return self.invert(z.to(self.device) * temperature)

    def _dtype(self) -> torch.dtype:
        return self.layers[0].mask.dtype
