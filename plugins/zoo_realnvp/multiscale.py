"""RealNVP on images: the multi-scale architecture of Dinh et al. (2017).

Each scale but the last: 3 checkerboard couplings, a squeeze (every 2x2 block of pixels
becomes 4 channels), 3 channel-wise couplings, then half of the channels are factored out
(they go straight to the latent). The last scale: 4 checkerboard couplings, or channel-wise
ones when it is down to a single pixel. Masks alternate within each group, so every value
is transformed. An affine coupling with mask ``b`` (1 = kept)::

    y = b*x + (1-b) * (x * exp(s(b*x)) + t(b*x)),    log|det J| = sum((1-b) * s(b*x))

with ``s`` and ``t`` from a convolutional ResNet and ``s`` softly bounded to
``(-scale_bound, scale_bound)``. ``forward`` returns the latent laid out in the input's
shape (the factored-out parts are un-squeezed back into place), so ``invert`` takes a
tensor of the data's shape too. With ``levels`` the flow first maps ``[0, levels]`` to the
real line by a logit (``dequantization.LogitTransform``); ``log_prob`` is then the exact
density of the continuous model, and ``log_likelihood`` of integer data its dequantization
bound.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from zoo.plugin import (
    FLOAT32_MAX,
    ContextInput,
    ContextSpec,
    ZooModel,
    check_discrete,
    check_sampling,
)
from zoo_realnvp.config import RealNVPConfig
from zoo_realnvp.dequantization import (
    LogitTransform,
    dequantize,
    importance_weighted,
    quantize,
)

ACTIVATIONS = {"relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh, "elu": nn.ELU}


def squeeze(x: Tensor) -> Tensor:
    """``[B, C, H, W]`` to ``[B, 4C, H/2, W/2]``: each 2x2 block becomes 4 channels."""
    b, c, h, w = x.shape
    x = x.reshape(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, 4 * c, h // 2, w // 2)


def unsqueeze(x: Tensor) -> Tensor:
    """The inverse of ``squeeze``."""
    b, c, h, w = x.shape
    x = x.reshape(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, 2 * h, 2 * w)


def checkerboard(h: int, w: int, parity: int) -> Tensor:
    """A ``[1, 1, H, W]`` mask that is 1 where ``(row + column) % 2 == parity``."""
    rows, cols = torch.arange(h)[:, None], torch.arange(w)[None, :]
    return ((rows + cols) % 2 == parity).float().reshape(1, 1, h, w)


class ResNet(nn.Module):
    """The s/t network: a 3x3 convolution in, ``blocks`` residual blocks, a 3x3 convolution out.

    The output convolution starts at zero, so a fresh coupling is the identity and training
    starts from the base distribution. A conditional flow adds a linear map of the context
    (``context_features`` wide) to the input convolution's output at every pixel.
    """

    def __init__(self, c_in: int, c_out: int, hidden: int, blocks: int, activation: str,
                 context_features: int = 0):
        super().__init__()
        act = ACTIVATIONS[activation]
        self.inp = nn.Conv2d(c_in, hidden, 3, padding=1)
        self.condition = (nn.Linear(context_features, hidden, bias=False)
                          if context_features else None)
        self.blocks = nn.ModuleList(
            nn.Sequential(act(), nn.Conv2d(hidden, hidden, 3, padding=1),
                          act(), nn.Conv2d(hidden, hidden, 3, padding=1))
            for _ in range(blocks))
        self.out = nn.Sequential(act(), nn.Conv2d(hidden, c_out, 3, padding=1))
        nn.init.zeros_(self.out[1].weight)
        nn.init.zeros_(self.out[1].bias)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        h = self.inp(x)
        if context is not None:
            h = h + self.condition(context)[:, :, None, None]
        for block in self.blocks:
            h = h + block(h)
        return self.out(h)


class CheckerboardCoupling(nn.Module):
    """Transforms the pixels where the mask is 0 from those where it is 1 (all channels)."""

    def __init__(self, channels: int, mask: Tensor, config: RealNVPConfig):
        super().__init__()
        self.register_buffer("mask", mask)
        # The mask is an input channel: the network then knows which pixels it may read.
        self.net = ResNet(channels + 1, 2 * channels, config.hidden, config.blocks,
                          config.activation, ContextSpec.of(config).size)
        self.bound = config.scale_bound

    def scale_shift(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept = x * self.mask
        raw, t = self.net(torch.cat([kept, self.mask.expand(len(x), 1, -1, -1)], 1),
                          context).chunk(2, 1)
        free = 1 - self.mask
        return self.bound * torch.tanh(raw) * free, t * free

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        s, t = self.scale_shift(x, context)
        return torch.addcmul(t, x, torch.exp(s)), s.flatten(1).sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        s, t = self.scale_shift(y, context)  # the kept pixels are the same in x and y
        return (y - t) * torch.exp(-s)


class ChannelCoupling(nn.Module):
    """Transforms one half of the channels from the other; ``flip`` swaps the halves."""

    def __init__(self, channels: int, flip: bool, config: RealNVPConfig):
        super().__init__()
        self.half, self.flip = channels // 2, flip
        self.net = ResNet(self.half, 2 * (channels - self.half), config.hidden, config.blocks,
                          config.activation, ContextSpec.of(config).size)
        self.bound = config.scale_bound

    def _split(self, x: Tensor) -> tuple[Tensor, Tensor]:
        a, b = x[:, : self.half], x[:, self.half :]
        return (b, a) if self.flip else (a, b)

    def _join(self, kept: Tensor, free: Tensor) -> Tensor:
        return torch.cat([free, kept] if self.flip else [kept, free], 1)

    def scale_shift(self, kept: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        raw, t = self.net(kept, context).chunk(2, 1)
        return self.bound * torch.tanh(raw), t

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        kept, free = self._split(x)
        s, t = self.scale_shift(kept, context)
        return self._join(kept, torch.addcmul(t, free, torch.exp(s))), s.flatten(1).sum(1)

    def inverse(self, y: Tensor, context: Tensor | None = None) -> Tensor:
        kept, free = self._split(y)
        s, t = self.scale_shift(kept, context)
        return self._join(kept, (free - t) * torch.exp(-s))


class Scale(nn.Module):
    """One scale: couplings at full resolution, and (all but the last) couplings after a squeeze."""

    def __init__(self, shape: tuple[int, int, int], last: bool, config: RealNVPConfig):
        super().__init__()
        c, h, w = shape
        self.last = last
        count = 4 if last else 3
        if h * w >= 2:
            self.before = nn.ModuleList(
                CheckerboardCoupling(c, checkerboard(h, w, k % 2), config) for k in range(count))
        else:  # a single pixel has no checkerboard: couple channels instead
            self.before = nn.ModuleList(ChannelCoupling(c, k % 2 == 1, config)
                                        for k in range(count))
        self.after = nn.ModuleList() if last else nn.ModuleList(
            ChannelCoupling(4 * c, k % 2 == 1, config) for k in range(3))


def _run(layers: nn.ModuleList, h: Tensor, logdet: Tensor,
         context: Tensor | None) -> tuple[Tensor, Tensor]:
    for layer in layers:
        h, ld = layer(h, context)
        logdet = logdet + ld
    return h, logdet


class MultiScaleRealNVP(ZooModel):
    """A multi-scale RealNVP over ``[B, C, H, W]`` images with a standard-normal base."""

    def __init__(self, config: RealNVPConfig):
        super().__init__()
        self.config = config
        self.shape = tuple(config.shape)
        self.dims = math.prod(self.shape)
        self.levels = config.levels
        self.likelihood_bound = config.levels is not None
        self.logit = (LogitTransform(config.levels, config.alpha)
                      if config.levels is not None else None)
        c, h, w = self.shape
        scales = []
        for i in range(config.scales):
            last = i == config.scales - 1
            scales.append(Scale((c, h, w), last, config))
            c, h, w = 2 * c, h // 2, w // 2  # squeezed to 4c, half of it factored out
        self.scales = nn.ModuleList(scales)
        # Parameter-free, but a buffer gives the model a dtype and device (base samples).
        self.register_buffer("base_scale", torch.ones(()))
        spec = ContextSpec.of(config)
        self.context_input = ContextInput(spec) if spec else None

    def _features(self, context: Tensor | None) -> Tensor | None:
        return None if context is None else self.context_input(context).to(self.base_scale.dtype)

    # -- the flow --------------------------------------------------------------------------

    def _flow(self, h: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        logdet = h.new_zeros(len(h))
        factored = []
        for scale in self.scales:
            h, logdet = _run(scale.before, h, logdet, context)
            if scale.last:
                break
            h, logdet = _run(scale.after, squeeze(h), logdet, context)
            half = h.shape[1] // 2
            factored.append(h[:, :half])
            h = h[:, half:]
        for z in reversed(factored):  # put every latent part back in the data's layout
            h = unsqueeze(torch.cat([z, h], 1))
        return h, logdet

    def _invert(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        factored, h = [], z
        for _ in range(len(self.scales) - 1):
            h = squeeze(h)
            half = h.shape[1] // 2
            factored.append(h[:, :half])
            h = h[:, half:]
        for i in reversed(range(len(self.scales))):
            scale = self.scales[i]
            if not scale.last:
                h = torch.cat([factored[i], h], 1)
                for layer in reversed(scale.after):
                    h = layer.inverse(h, context)
                h = unsqueeze(h)
            for layer in reversed(scale.before):
                h = layer.inverse(h, context)
        return h

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` (in ``x``'s shape) and ``log|det df/dx|`` for each example; with
        ``levels``, ``f`` includes the logit preprocessing. ``context``: the checked
        context of a conditional flow."""
        features = self._features(context)
        if self.logit is None:
            return self._flow(x, features)
        h, logdet = self.logit.forward(x)
        z, ld = self._flow(h, features)
        return z, logdet + ld

    def invert(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``x = f^{-1}(z)``: continuous values (in ``[0, levels]`` with ``levels``)."""
        x = self._invert(z, self._features(context))
        return x if self.logit is None else self.logit.inverse(x)

    # -- the ZooModel interface ------------------------------------------------------------

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """The exact log-density of the continuous model at float ``x`` ``[B, C, H, W]``, in
        nats. With ``levels`` the density lives on the logit map's interval, a little wider
        than ``[0, levels]`` per value (``-inf`` outside, see ``dequantization``); integer
        levels are scored by ``log_likelihood``."""
        self._check_values(x)
        x = x.to(self.base_scale.dtype)
        inside = None
        if self.logit is not None:
            lo, hi = self.logit.support
            flat = x.flatten(1)
            inside = (flat > lo).all(1) & (flat < hi).all(1)
            x = torch.where(inside[:, None, None, None], x, self.levels / 2)  # no NaN outside
        z, logdet = self(x, context)
        base = -0.5 * z.flatten(1).square().sum(1) - 0.5 * self.dims * math.log(2 * math.pi)
        lp = base + logdet
        return lp if inside is None else lp.masked_fill(~inside, -math.inf)

    def log_likelihood(self, x: Tensor, *, context: object = None, samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor:
        """Continuous data: ``log_prob(x)``. Integer levels: the lower bound on ``log P(x)``
        from ``samples`` uniform dequantization draws (importance-weighted when more than one)."""
        given = {} if context is None else {"context": context}
        if self.levels is None:
            return self.log_prob(x, **given)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        x = check_discrete(x, self.shape, self.levels)
        draws = [self.log_prob(dequantize(x, generator), **given) for _ in range(samples)]
        return draws[0] if samples == 1 else importance_weighted(torch.stack(draws))

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given=None, mask=None,
               context: Tensor | None = None) -> Tensor:
        """``n`` images: float32, or int64 levels ``0..levels-1`` (the bin each draw falls in)."""
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("realnvp cannot complete partly known inputs (it is not autoregressive)")
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, *self.shape, generator=generator, device=device,
                        dtype=self.base_scale.dtype)
        x = self.invert(z.to(self.device) * temperature, context)
        return x if self.levels is None else quantize(x, self.levels)

    def _check_values(self, x: object) -> None:
        want = "[B, " + ", ".join(str(s) for s in self.shape) + "]"
        if not isinstance(x, Tensor):
            raise ValueError(f"expected a torch.Tensor of shape {want}, got {type(x).__name__}")
        if not x.is_floating_point():
            hint = (" (integer levels: use log_likelihood, the dequantization bound)"
                    if self.levels is not None else "")
            raise ValueError(f"log_prob takes floating-point values of shape {want}, got "
                             f"{x.dtype}{hint}")
        if x.dim() != 4 or tuple(x.shape[1:]) != self.shape:
            raise ValueError(f"expected shape {want}, got {list(x.shape)}")
        if not torch.isfinite(x).all():
            raise ValueError("input contains NaN or infinite values")
        if x.dtype.itemsize > 4 and bool((x.abs() > FLOAT32_MAX).any()):
            raise ValueError(f"input values must lie within the float32 range "
                             f"(|x| <= {FLOAT32_MAX:.4g})")
