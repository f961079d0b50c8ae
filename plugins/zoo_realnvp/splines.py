"""Monotone rational-quadratic splines (Durkan et al., 2019, "Neural Spline Flows"), elementwise.

On ``[-bound, bound]`` the map is a spline of ``K`` bins whose knots are set by unnormalised
bin widths, bin heights and inner-knot derivatives (one set per element); outside it is the
identity, so the derivative at both ends is 1 and the map is continuous and C1 everywhere.
Each bin maps ``xi = (x - x_k) / w_k`` in ``[0, 1]`` to

    y = y_k + h_k (s xi^2 + d_k xi (1 - xi)) / (s + (d_k + d_{k+1} - 2 s) xi (1 - xi)),

with ``s = h_k / w_k``, which is strictly increasing for positive derivatives, and its inverse
is the root in ``[0, 1]`` of a quadratic, in closed form.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

#: Smallest bin width/height (as a fraction of the interval) and smallest knot derivative:
#: they keep every bin invertible and the log-det finite whatever the network outputs.
MIN_BIN = 1e-3
MIN_DERIVATIVE = 1e-3
# softplus(_ONE) == 1: a zero network output gives unit derivatives, i.e. the identity.
_ONE = math.log(math.e - 1.0)


def parameters_per_element(bins: int) -> int:
    """Network outputs one element's spline needs: K widths, K heights, K - 1 derivatives."""
    return 3 * bins - 1


def _knots(raw: Tensor, bound: float) -> Tensor:
    """Knot positions ``[..., K + 1]`` from -bound to bound (exactly) from unnormalised bin
    sizes ``[..., K]``; widths and heights go through together, stacked on a leading axis."""
    bins = raw.shape[-1]
    sizes = MIN_BIN + (1.0 - MIN_BIN * bins) * torch.softmax(raw, dim=-1)
    inner = (2.0 * bound) * torch.cumsum(sizes[..., :-1], dim=-1) - bound
    return F.pad(F.pad(inner, (1, 0), value=-bound), (0, 1), value=bound)


def rational_quadratic(x: Tensor, params: Tensor, bound: float, *,
                       inverse: bool = False) -> tuple[Tensor, Tensor]:
    """The spline (or its inverse) applied to ``x [...]`` with ``params [..., 3K - 1]``.

    Returns the output and ``log |dy/dx|`` of the forward map at the point, elementwise (for
    the inverse, the forward map's log-derivative at the returned point; negate it for the
    inverse's own).
    """
    bins = (params.shape[-1] + 1) // 3
    # Few, larger operations: on small batches each operation's fixed cost is the price.
    raw_sizes = params[..., :2 * bins].unflatten(-1, (2, bins))  # widths, heights
    inner_d = MIN_DERIVATIVE + (1.0 - MIN_DERIVATIVE) * F.softplus(params[..., 2 * bins:] + _ONE)
    derivs = F.pad(inner_d, (1, 1), value=1.0)  # unit slope at the ends meets the identity tails
    table = torch.cat([_knots(raw_sizes, bound), derivs.unsqueeze(-2)], dim=-2)  # [..., 3, K+1]

    inside = (x >= -bound) & (x <= bound)
    v = x.clamp(-bound, bound)
    # Bin k holds knots[k] <= v < knots[k+1]: count the inner knots at or below v.
    knots = table[..., 1 if inverse else 0, 1:-1].contiguous()
    k = torch.searchsorted(knots, v.unsqueeze(-1), right=True)
    ends = torch.cat([k, k + 1], dim=-1).unsqueeze(-2).expand(*k.shape[:-1], 3, 2)
    picked = table.gather(-1, ends)  # one gather: both ends of x, y and the derivative
    (x_k, x_hi), (y_k, y_hi), (d_lo, d_hi) = (pair.unbind(-1) for pair in picked.unbind(-2))
    w_k, h_k = x_hi - x_k, y_hi - y_k
    slope = h_k / w_k
    curve = d_lo + d_hi - 2.0 * slope

    if inverse:
        dy = v - y_k
        a = h_k * (slope - d_lo) + dy * curve
        b = h_k * d_lo - dy * curve
        c = -slope * dy
        disc = (b.square() - 4.0 * a * c).clamp(min=0.0)
        # The stable form of the root in [0, 1] (no cancellation when a is near 0).
        xi = ((2.0 * c) / (-b - disc.sqrt())).clamp(0.0, 1.0)
        out = x_k + xi * w_k
    else:
        xi = (v - x_k) / w_k
    mix = xi * (1.0 - xi)
    den = slope + curve * mix
    if not inverse:
        out = y_k + h_k * (slope * xi.square() + d_lo * mix) / den
    dnum = slope.square() * (d_hi * xi.square() + 2.0 * slope * mix + d_lo * (1.0 - xi).square())
    logdet = torch.log(dnum) - 2.0 * torch.log(den)
    return torch.where(inside, out, x), torch.where(inside, logdet, torch.zeros_like(logdet))
