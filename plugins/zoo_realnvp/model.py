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

The couplings' networks are stored stacked (``StackedMLPs``: one tensor per layer for the
even couplings and one for the odd ones), which is what makes a small flow's training step
cheap; artifacts written before (one network per coupling) load through
``stacked_layout``.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.plugin import ContextInput, ContextSpec, ZooModel, check_continuous, check_sampling
from zoo_realnvp.config import RealNVPConfig
from zoo_realnvp.fused import ACTIVATIONS as FUSED_ACTIVATIONS
from zoo_realnvp.fused import AffineCouplings, WeightRows
from zoo_realnvp.splines import parameters_per_element, rational_quadratic

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
    with warnings.catch_warnings():  # no outputs: the empty half of a one-column flow
        warnings.simplefilter("ignore", UserWarning)
        out = nn.Linear(hidden, outputs)
    nn.init.zeros_(out.weight)
    nn.init.zeros_(out.bias)
    return nn.Sequential(*blocks, out)


class StackedMLPs(nn.Module):
    """The networks of several couplings of one shape, each layer's weights stacked on a
    leading axis: ``weights[i]`` is ``[count, out, in]``, ``biases[i]`` ``[count, out]``.

    The couplings still run one after the other, each with its own weights (``unstacked``
    views them once per pass). What stacking saves is per-tensor work: on small flows the
    optimizer, autograd's gradient accumulation and ``torch.compile``'s guards cost per
    tensor, and there are ``layers + 1`` pairs of tensors per stack rather than per coupling.
    """

    def __init__(self, nets: list[nn.Sequential], activation: str):
        super().__init__()
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        self.weights = nn.ParameterList(_stacked([layers[i].weight for layers in linears])
                                        for i in range(len(linears[0])))
        self.biases = nn.ParameterList(_stacked([layers[i].bias for layers in linears])
                                       for i in range(len(linears[0])))
        self.activation = ACTIVATIONS[activation]()

    def tensors(self) -> list[Tensor]:
        """``[weight, bias, weight, bias, ...]``, layer by layer: ``AffineCouplings``'s
        inputs. (Read from the lists' ``_parameters``: iterating a ``ParameterList`` goes
        through ``__getattr__`` per item, which a small flow's step notices.)"""
        return [t for pair in zip(self.weights._parameters.values(),
                                  self.biases._parameters.values()) for t in pair]

    def unstacked(self) -> list[list[tuple[Tensor, Tensor]]]:
        """Each network's ``[(weight, bias), ...]``, as views of the stacked tensors."""
        weights = [w.unbind(0) for w in self.weights]
        biases = [b.unbind(0) for b in self.biases]
        return [[(w[j], b[j]) for w, b in zip(weights, biases)] for j in range(len(weights[0]))]

    def run(self, layers: list[tuple[Tensor, Tensor]], x: Tensor) -> Tensor:
        """One network (an element of ``unstacked()``) applied to ``x``."""
        for weight, bias in layers[:-1]:
            x = self.activation(F.linear(x, weight, bias))
        weight, bias = layers[-1]
        return F.linear(x, weight, bias)


def _stacked(tensors: list[Tensor]) -> Tensor:
    """``torch.stack(tensors)``, by copies: on the meta device (where the loader sizes a model
    without allocating it) ``torch.stack`` imports torch's Python decompositions, a second
    and more, while ``copy_`` is native."""
    out = torch.empty((len(tensors), *tensors[0].shape), dtype=tensors[0].dtype,
                      device=tensors[0].device)
    with torch.no_grad():
        for row, tensor in zip(out, tensors):
            row.copy_(tensor)
    return out


def stacked_layout(config: RealNVPConfig, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
    """Tensors stored before the networks were stacked (``layers.{k}.net.{j}.weight``, one
    ``nn.Sequential`` per coupling) in today's layout (``nets.{parity}.weights.{i}``): the
    same numbers, so an old artifact loads as the same function. Others pass unchanged."""
    if not any(name.startswith("layers.") for name in tensors):
        return tensors
    out = {k: v for k, v in tensors.items() if not k.startswith("layers.")}
    for parity in range(min(2, config.couplings)):
        members = range(parity, config.couplings, 2)
        for i in range(config.layers + 1):
            for kind, plural in (("weight", "weights"), ("bias", "biases")):
                names = [f"layers.{k}.net.{2 * i}.{kind}" for k in members]
                if not all(n in tensors for n in names):
                    return tensors  # not the old layout either: let the strict check say so
                out[f"nets.{parity}.{plural}.{i}"] = torch.stack([tensors[n] for n in names])
    return out


def covariance(rows: Any, mean: Tensor, std: Tensor, count: int) -> Tensor:
    """The correlation matrix of the rows (standardized by ``mean`` and ``std``), read in
    chunks in float64: what the whitening map factors."""
    total = torch.zeros(len(mean), len(mean), dtype=torch.float64)
    for _, batch in rows.batches(1 << 16):
        z = (batch.double().reshape(len(batch), -1) - mean) / std
        total += z.T @ z
    return total / count


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
        per_output = parameters_per_element(config.bins) if config.coupling == "spline" else 2
        spec = ContextSpec.of(config)
        # A conditional flow's context is an extra input of every coupling network.
        self.context_input = ContextInput(spec) if spec else None
        extra = spec.size
        # Built one coupling after the other (the random initialisation does not depend on
        # the stacking), then stacked by parity: even couplings keep the first half.
        nets = [mlp(sizes[k % 2] + extra, config.hidden, config.layers, config.activation,
                    sizes[1 - k % 2] * per_output) for k in range(config.couplings)]
        self.nets = nn.ModuleList(StackedMLPs(nets[parity::2], config.activation)
                                  for parity in range(min(2, config.couplings)))
        if config.standardize:
            # An elementwise affine layer: the identity until training sets it to the
            # training rows' mean and spread (``set_standardization``). Frozen parameters,
            # not buffers: state learned from the data, which loading cannot rebuild from the
            # config. Not trained further: on a few hundred rows a trainable scale overfits
            # (iris: 2.32 nats on the test rows against 1.94 frozen).
            self.shift = nn.Parameter(torch.zeros(dim), requires_grad=False)
            self.log_scale = nn.Parameter(torch.zeros(dim), requires_grad=False)
        if config.whiten:
            # The full-covariance map: unmix = C^-1/2 and mix = C^1/2, C the training rows'
            # correlation (identities until training sets them).
            self.unmix = nn.Parameter(torch.eye(dim), requires_grad=False)
            self.mix = nn.Parameter(torch.eye(dim), requires_grad=False)
        if config.grid is not None:
            self.register_buffer("grid", torch.tensor(config.grid, dtype=torch.float32))
        self.likelihood_bound = config.grid is not None and any(s > 0 for s in config.grid)
        #: run affine couplings through ``AffineCouplings`` (False: through autograd, op by
        #: op; the tests compare the two).
        self.fuse = True
        self.weight_rows = WeightRows()

    @torch.no_grad()
    def initialize_from_data(self, rows: Any) -> None:
        """Set a standardizing layer from the mean and standard deviation of the rows the
        trainer trains on, read in chunks in float64 (``ZooModel.initialize_from_data``). A
        constant column keeps scale 1 rather than dividing by 0; dequantized columns count
        their step of noise in the spread."""
        if not self.config.standardize:
            return
        count = 0
        total = torch.zeros(self.dim, dtype=torch.float64)
        squares = torch.zeros(self.dim, dtype=torch.float64)
        for _, batch in rows.batches(1 << 16):
            batch = batch.double().reshape(len(batch), -1)
            count += len(batch)
            total += batch.sum(0)
            squares += batch.square().sum(0)
        if count == 0:
            return
        mean = total / count
        var = (squares / count - mean.square()).clamp_min(0)
        std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
        if self.likelihood_bound:
            std = torch.sqrt(std.square() + self.grid.double().square() / 12)
        self.set_standardization(mean, std)
        if self.config.whiten:
            self.set_whitening(covariance(rows, mean, std, count))

    @torch.no_grad()
    def set_whitening(self, correlation: Tensor) -> None:
        """Start the full-covariance map at the symmetric (ZCA) whitening of the standardized
        rows' correlation, ``C^-1/2``: of all the maps that whiten, the one that moves each
        column least, so the couplings still see the columns' own shapes (a small ridge
        keeps a collinear table invertible)."""
        dim = correlation.shape[0]
        values, vectors = torch.linalg.eigh(correlation + torch.eye(dim, dtype=torch.float64)
                                            * 1e-6)
        values = values.clamp_min(1e-6)
        self.mix.copy_((vectors * values.sqrt()) @ vectors.T)
        self.unmix.copy_((vectors * values.rsqrt()) @ vectors.T)

    @torch.no_grad()
    def set_standardization(self, mean: Tensor, std: Tensor) -> None:
        """Start the elementwise affine layer at the training rows' mean and standard
        deviation, so the couplings (and a spline's box) see columns of unit scale."""
        self.shift.copy_(mean.to(self.shift))
        self.log_scale.copy_(torch.log(std.to(self.log_scale)))

    def _standardized(self, x: Tensor) -> tuple[Tensor, Tensor | float]:
        if not self.config.standardize:
            return x, 0.0
        z = (x - self.shift) * torch.exp(-self.log_scale)
        offset = -self.log_scale.sum()
        if self.config.whiten:
            z = z @ self.unmix.T
            offset = offset + torch.linalg.slogdet(self.unmix)[1]
        return z, offset

    def _networks(self) -> list[list[tuple[Tensor, Tensor]]]:
        """Coupling ``k``'s layers, for every k (views of the stacked weights)."""
        by_parity = [stack.unstacked() for stack in self.nets]
        return [by_parity[k % 2][k // 2] for k in range(self.config.couplings)]

    def _couple(self, k: int, layers: list[tuple[Tensor, Tensor]], kept: Tensor, free: Tensor,
                inverse: bool = False, context: Tensor | None = None
                ) -> tuple[Tensor, Tensor | None]:
        """Coupling ``k`` applied to ``free`` given ``kept`` (and the context's features):
        the new free half and the elementwise log-derivatives of the forward map (None for
        the inverse)."""
        inputs = kept if context is None else torch.cat([kept, context], dim=1)
        out = self.nets[k % 2].run(layers, inputs)
        config = self.config
        if config.coupling == "spline":
            params = out.view(kept.shape[0], free.shape[1], parameters_per_element(config.bins))
            y, logdet = rational_quadratic(free, params, config.spline_bound, inverse=inverse)
            return y, None if inverse else logdet
        raw, t = out.chunk(2, dim=-1)
        # Soft clamp: log-scales stay in (-bound, bound), with a gradient everywhere.
        s = config.scale_bound * torch.tanh(raw)
        if inverse:
            return (free - t) * torch.exp(-s), None
        return torch.addcmul(t, free, torch.exp(s)), s

    def _halves(self, x: Tensor) -> list[Tensor]:
        return [x.index_select(1, self.first), x.index_select(1, self.second)]

    def _features(self, context: Tensor | None) -> Tensor | None:
        return None if context is None else self.context_input(context).to(self.masks.dtype)

    def _flow(self, x: Tensor, features: Tensor | None = None) -> tuple[list[Tensor], Tensor]:
        """The two halves of ``z = f(x)`` and ``log|det df/dx|``."""
        if self._fusable(features):
            first, second, logdet = self._fused(x)
            return [first, second], logdet
        return self._flow_unfused(x, features)

    def _fused(self, x: Tensor, base: float | None = None) -> tuple[Tensor, Tensor, Tensor]:
        """``AffineCouplings`` on ``x`` (with ``base``: its third output is the log-density,
        ``base`` the normal's log-normaliser)."""
        config = self.config
        weights = [t for stack in self.nets for t in stack.tensors()]
        plan = (config.couplings, config.scale_bound, config.activation, config.layers + 1,
                base, self.weight_rows.of(weights, config.layers + 1))
        return AffineCouplings.apply(*self._halves(x), plan, *weights)

    def _fusable(self, features: Tensor | None) -> bool:
        """Whether ``_flow`` can run as ``AffineCouplings``: the same function and gradients,
        in about half the time of a small flow's step (``zoo_realnvp.fused``)."""
        return (features is None and self.config.coupling == "affine" and self.fuse
                and self.config.activation in FUSED_ACTIVATIONS
                and not torch.compiler.is_compiling()  # a compiler fuses the plain ops
                and not torch.is_autocast_enabled(self.masks.device.type))

    def _flow_unfused(self, x: Tensor, features: Tensor | None = None
                      ) -> tuple[list[Tensor], Tensor]:
        halves = self._halves(x)
        scales = []
        for k, layers in enumerate(self._networks()):
            keep = k % 2
            halves[1 - keep], s = self._couple(k, layers, halves[keep], halves[1 - keep],
                                               context=features)
            scales.append(s)
        return halves, torch.cat(scales, dim=1).sum(-1)

    def forward(self, x: Tensor, context: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``z = f(x)`` and ``log|det df/dx|`` for each example (given the checked
        ``context`` of a conditional flow)."""
        halves, logdet = self._flow(x, self._features(context))
        return torch.cat(halves, dim=1).index_select(1, self.unsplit), logdet

    def invert(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        """``x = f^{-1}(z)``: map latent points back to data space."""
        features = self._features(context)
        halves = self._halves(z)
        networks = self._networks()
        for k in reversed(range(len(networks))):
            keep = k % 2
            halves[1 - keep] = self._couple(k, networks[k], halves[keep], halves[1 - keep],
                                            inverse=True, context=features)[0]
        return torch.cat(halves, dim=1).index_select(1, self.unsplit)

    def log_prob(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        check_continuous(x, self.dim)
        x, offset = self._standardized(x.to(self.masks.dtype))
        features = self._features(context)
        normaliser = 0.5 * self.dim * math.log(2 * math.pi)
        if self._fusable(features):
            log_p = self._fused(x, base=normaliser)[2]
        else:
            (a, b), logdet = self._flow_unfused(x, features)
            log_p = -0.5 * (a.square().sum(-1) + b.square().sum(-1)) - normaliser + logdet
        return log_p if isinstance(offset, float) else log_p + offset

    def log_likelihood(self, x: Tensor, *, context: Any = None, samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor:
        """``log_prob(x)``, or with grid columns the dequantization bound: the log-density at
        ``x + (u - 1/2) step`` per grid column, ``u ~ U[0, 1)`` (importance-weighted over
        ``samples`` draws). It bounds the log-probability of the recorded value's bin, divided
        by the bin's width: comparable with a density of the columns on that grid."""
        given = {} if context is None else {"context": context}
        if not self.likelihood_bound:
            return self.log_prob(x, **given)
        if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
            raise ValueError(f"samples must be a positive integer, got {samples!r}")
        check_continuous(x, self.dim)
        x = x.to(self.masks.dtype)
        device = generator.device if generator is not None else x.device
        draws = []
        for _ in range(samples):
            u = torch.rand(x.shape, generator=generator, device=device, dtype=x.dtype)
            draws.append(self.log_prob(x + (u.to(x.device) - 0.5) * self.grid, **given))
        if samples == 1:
            return draws[0]
        return torch.logsumexp(torch.stack(draws), 0) - math.log(samples)

    @torch.no_grad()
    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given=None, mask=None,
               context: Tensor | None = None) -> Tensor:
        check_sampling(n, temperature)
        if given is not None or mask is not None:
            raise ValueError("realnvp cannot complete partly known inputs (it is not autoregressive)")
        device = generator.device if generator is not None else self.device
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=self.masks.dtype)
        x = self.invert(z.to(self.device) * temperature, context)
        if self.config.whiten:
            x = x @ self.mix.T
        if self.config.standardize:
            x = x * torch.exp(self.log_scale) + self.shift
        if self.likelihood_bound:
            # Grid columns are recorded on their grid: a draw is the value of its bin.
            on_grid = self.grid > 0
            step = torch.where(on_grid, self.grid, torch.ones_like(self.grid))
            x = torch.where(on_grid, torch.round(x / step) * step, x)
        return x

