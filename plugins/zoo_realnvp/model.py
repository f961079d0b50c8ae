"""RealNVP: coupling layers with alternating binary masks and a standard-normal base.

The couplings are affine (below) or, with ``coupling: spline``, monotone rational-quadratic
splines (``zoo_realnvp.splines``); both read one half and rewrite the other.

One coupling layer with mask ``b`` (1 = passed through, 0 = transformed)::

    y = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x)),    log|det J| = sum((1-b) * s(b*x))

Because ``s`` and ``t`` only see ``b*x``, which the layer leaves unchanged, the inverse is
explicit: ``x = b*y + (1-b) * (y - t(b*y)) * exp(-s(b*y))``.

The masks alternate between two complementary halves of the coordinates, so the flow keeps
the two halves as separate tensors from the first layer to the last: a layer reads one
half and rewrites the other, with no masking, gathering or scattering per layer. This is
the formula above, computed with about half the operations; the masks and the split they
imply are stored buffers, so a loaded model is the same function.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.model import ZooModel, check_continuous, check_sampling
from zoo_realnvp.config import RealNVPConfig
from zoo_realnvp.splines import SplineCoupling, parameters_per_element

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


def split_halves(config: RealNVPConfig) -> tuple[Tensor, Tensor]:
    """The two complementary halves the masks alternate between: even/odd coordinates, or a
    random split fixed by ``mask_seed``."""
    dim = config.shape[0]
    if config.masks == "alternate":
        return torch.arange(0, dim, 2), torch.arange(1, dim, 2)
    order = torch.randperm(dim, generator=torch.Generator().manual_seed(config.mask_seed))
    return order[: (dim + 1) // 2].sort().values, order[(dim + 1) // 2 :].sort().values


def mlp(inputs: int, hidden: int, layers: int, activation: str, outputs: int) -> nn.Sequential:
    """``layers`` hidden layers of width ``hidden``; the output layer starts at zero, so a
    fresh coupling is the identity and training starts from the base distribution."""
    widths = [inputs] + [hidden] * layers
    blocks: list[nn.Module] = []
    for w_in, w_out in zip(widths[:-1], widths[1:]):
        blocks += [nn.Linear(w_in, w_out), ACTIVATIONS[activation]()]
    out = nn.Linear(hidden, outputs)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*blocks, out)


class AffineCoupling(nn.Module):
    """One coupling: an MLP of the kept half gives log-scale ``s`` and shift ``t`` of the other.

    The MLP's output layer starts at zero, so a fresh coupling is the identity and training
    starts from the base distribution.
    """

    def __init__(self, kept: int, free: int, hidden: int, layers: int, activation: str,
                 bound: float):
        super().__init__()
        self.net = mlp(kept, hidden, layers, activation, 2 * free)
        self.bound = bound

    def scale_shift(self, kept: Tensor) -> tuple[Tensor, Tensor]:
        raw, t = self.net(kept).chunk(2, dim=-1)
        # Soft clamp: log-scales stay in (-bound, bound), with a gradient everywhere.
        return self.bound * torch.tanh(raw), t

    def forward(self, kept: Tensor, free: Tensor) -> tuple[Tensor, Tensor]:
        """The transformed free half and its log-scales (their sum is the log-det)."""
        s, t = self.scale_shift(kept)
        return torch.addcmul(t, free, torch.exp(s)), s

    def inverse(self, kept: Tensor, free: Tensor) -> Tensor:
        s, t = self.scale_shift(kept)
        return (free - t) * torch.exp(-s)


def coupling(config: RealNVPConfig, kept: int, free: int) -> nn.Module:
    """One coupling layer of the kind ``config.coupling`` names."""
    if config.coupling == "spline":
        net = mlp(kept, config.hidden, config.layers, config.activation,
                  free * parameters_per_element(config.bins))
        return SplineCoupling(net, free, config.bins, config.spline_bound)
    return AffineCoupling(kept, free, config.hidden, config.layers, config.activation,
                          config.scale_bound)


class RealNVP(ZooModel):
    """A RealNVP flow over ``[B, D]`` vectors with a standard-normal base distribution."""

    def __init__(self, config: RealNVPConfig):
        super().__init__()
        self.config = config
        self.dim = dim = config.shape[0]
        first, second = split_halves(config)
        self.register_buffer("first", first)
        self.register_buffer("second", second)
        # unsplit[i]: where coordinate i sits in cat(first half, second half).
        self.register_buffer("unsplit", torch.argsort(torch.cat([first, second])))
        masks = torch.zeros(config.couplings, dim)
        masks[0::2, first] = 1.0  # even couplings keep the first half, odd ones the second
        masks[1::2, second] = 1.0
        self.register_buffer("masks", masks)
        sizes = (len(first), len(second))
        self.layers = nn.ModuleList(
            coupling(config, sizes[k % 2], sizes[1 - k % 2]) for k in range(config.couplings)
        )

    def _halves(self, x: Tensor) -> list[Tensor]:
        return [x.index_select(1, self.first), x.index_select(1, self.second)]

    def _flow(self, x: Tensor) -> tuple[list[Tensor], Tensor]:
        halves = self._halves(x)
        scales = []
        for k, layer in enumerate(self.layers):
            keep = k % 2
            halves[1 - keep], s = layer(halves[keep], halves[1 - keep])
            scales.append(s)
        return halves, torch.cat(scales, dim=1).sum(-1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` and ``log|det df/dx|`` for each example."""
        halves, logdet = self._flow(x)
        return torch.cat(halves, dim=1).index_select(1, self.unsplit), logdet

    def invert(self, z: Tensor) -> Tensor:
        """``x = f^{-1}(z)``: map latent points back to data space."""
        halves = self._halves(z)
        for k in reversed(range(len(self.layers))):
            keep = k % 2
            halves[1 - keep] = self.layers[k].inverse(halves[keep], halves[1 - keep])
        return torch.cat(halves, dim=1).index_select(1, self.unsplit)

    def log_prob(self, x: Tensor) -> Tensor:
        check_continuous(x, self.dim)
        (a, b), logdet = self._flow(x.to(self.masks.dtype))
        base = -0.5 * (a.square().sum(-1) + b.square().sum(-1))
        return base - 0.5 * self.dim * math.log(2 * math.pi) + logdet

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given=None, mask=None) -> Tensor:
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("realnvp cannot complete partly known inputs (it is not autoregressive)")
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=self.masks.dtype)
        return self.invert(z.to(self.device) * temperature)
