"""The affine couplings of a vector flow, forward and backward written out by hand.

On a small flow (two moons: 8 couplings, MLPs of 64) a training step is a few hundred tiny
operations, and what it costs is mostly their overhead, not their arithmetic: autograd
records every forward operation, builds a node for it, and replays the graph op by op,
with transposes, views, a gradient per coupling and their accumulation in between. This
module runs the same arithmetic as ``RealNVP._flow_unfused`` for affine couplings, without
recording anything, and computes the gradients itself from the coupling's formula::

    y = v * exp(s) + t,   s = c * tanh(r),   (r, t) = mlp(u),   log|det| += sum(s)

    dL/dv = g exp(s)     dL/dt = g     dL/dr = (g v exp(s) + dL/dlog|det|) c (1 - tanh(r)^2)

What makes it cheap is where the numbers live. The networks' weights are stacked by parity
(``StackedMLPs``), and so is everything the backward needs: each layer's inputs for all the
couplings of one parity are one ``[couplings, batch, width]`` tensor, written in place as
the forward runs, and the backward writes each layer's output gradients the same way. A
weight's gradient for every coupling of a parity is then one batched product
(``bmm(grads^T, inputs)``, already in the stacked weight's shape), and a bias's one sum,
instead of a product, a sum and a view per coupling. The kept half of coupling ``k + 1`` is
the half coupling ``k`` just wrote, so the couplings' outputs go straight into those input
stacks, and the halves a coupling rewrites are found there too.

The result is the same function with the same gradients (the tests compare both with
autograd through the unfused path); ``RealNVP`` uses it when every piece is one it knows:
affine couplings, no context, and an activation below.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable

#: activation -> (forward in place, ``(grad, output, out=) -> grad of the input``): the
#: kernels autograd itself uses (a mask multiplication costs a bool-to-float conversion).
ACTIVATIONS: dict[str, Any] = {
    "relu": (torch.relu_, lambda g, h, out: torch.ops.aten.threshold_backward.grad_input(
        g, h, 0, grad_input=out)),
    "tanh": (torch.tanh_, lambda g, h, out: torch.ops.aten.tanh_backward.grad_input(
        g, h, grad_input=out)),
}
_tanh_backward = torch.ops.aten.tanh_backward.default


class AffineCouplings(torch.autograd.Function):
    """``(first half, second half, plan, *stacked weights) -> (first, second, log|det|)``.

    ``plan`` is ``(couplings, scale bound, activation, layers per network, base, rows)``.
    With ``base`` a number, the third output is the log-density itself,
    ``log|det| - |z|^2 / 2 - base`` (``base``: the normal's log-normaliser), which saves the
    few operations and graph nodes of computing it outside. ``weights`` alternates weight
    and bias tensors: the even couplings' stack (layer by layer), then the odd couplings'
    stack when there is one (``StackedMLPs``); ``rows`` is their ``WeightRows``.
    """

    @staticmethod
    def forward(ctx: Any, first: Tensor, second: Tensor, plan: tuple, *weights: Tensor
                ) -> tuple[Tensor, Tensor, Tensor]:
        couplings, bound, activation, per, base, rows = plan
        act = ACTIVATIONS[activation][0]
        stacks = _by_parity(weights, per)
        batch = first.shape[0]
        # inputs[p][i]: layer i's input for every coupling of parity p (i = 0: the kept half).
        inputs = [[first.new_empty(w.shape[0], batch, w.shape[2]) for w, _ in layers]
                  for layers in stacks]
        # squashed[p]: tanh(r) of every coupling of parity p; scales[p]: exp(s).
        squashed = [first.new_empty(layers[-1][1].shape[0], batch, layers[-1][1].shape[1] // 2)
                    for layers in stacks]
        scales = [torch.empty_like(t) for t in squashed]
        # Row views, made once: coupling k of parity p is row k // 2 of each stack.
        x, sq, sc = _rows(inputs), _rows([squashed])[0], _rows([scales])[0]
        w_t = rows.forward
        x[0][0][0].copy_(first)
        written = second
        for k in range(couplings):
            p, j = k % 2, k // 2
            h = x[p][0][j]
            for i in range(per - 1):
                h = act(torch.addmm(w_t[p][i][1][j], h, w_t[p][i][0][j], out=x[p][i + 1][j]))
            raw, shift = torch.addmm(w_t[p][-1][1][j], h, w_t[p][-1][0][j]).chunk(2, dim=1)
            torch.tanh(raw, out=sq[p][j])
            torch.mul(sq[p][j], bound, out=sc[p][j]).exp_()
            # The half coupling k rewrites: kept by coupling k - 1, and by k + 1 once written
            # (the next row of its input stack).
            free = second if k == 0 else x[1 - p][0][(k - 1) // 2]
            out = x[1 - p][0][(k + 1) // 2] if k + 1 < couplings else None
            written = torch.addcmul(shift, free, sc[p][j], out=out)
        # The half the last coupling kept, as a new view: ctx keeps the rows, and an output
        # held by ctx would be a reference cycle through its grad_fn.
        p, j = (couplings - 1) % 2, (couplings - 1) // 2
        halves = [inputs[p][0][j], written][::1 if p == 0 else -1]
        logdet = sum(t.sum((0, 2)) for t in squashed).mul_(bound)
        if base is not None:
            logdet -= torch.cat(halves, dim=1).square_().sum(1).mul_(0.5).add_(base)
        ctx.save_for_backward(second, *weights, *[t for stack in inputs for t in stack],
                              *squashed, *scales, written)
        # The weights' rows as this pass saw them (a later pass may make new ones).
        ctx.plan, ctx.rows = plan, (x, sq, sc, rows.backward)
        return halves[0], halves[1], logdet

    @staticmethod
    @once_differentiable  # its backward is not itself recorded: a second derivative refuses
    def backward(ctx: Any, grad_first: Tensor, grad_second: Tensor, grad_logdet: Tensor
                 ) -> tuple[Tensor | None, ...]:
        couplings, bound, activation, per, base, _ = ctx.plan
        derivative = ACTIVATIONS[activation][1]
        second, *rest, written = ctx.saved_tensors  # checks nothing was changed in place
        parities = min(2, couplings)
        weights, inputs = rest[: 2 * per * parities], rest[2 * per * parities:]
        stacks = _by_parity(weights, per)
        x, sq, sc, w = ctx.rows
        # grads[p][i]: the gradient of layer i's output (before its activation), stacked
        # like ``inputs``; the last layer's is (dL/dr, dL/dt).
        grads = [[torch.empty(w.shape[0], grad_first.shape[0], w.shape[1],
                              dtype=w.dtype, device=w.device) for w, _ in layers]
                 for layers in stacks]
        g_rows = _rows(grads)
        work = [torch.empty_like(x[p][-1][0]) for p in range(parities)]
        grad = [grad_first, grad_second]  # autograd gives zeros for an unused output
        dlogdet = grad_logdet[:, None]
        if base is not None:  # d(-|z|^2 / 2)/dz = -z
            p, j = (couplings - 1) % 2, (couplings - 1) // 2
            z = [x[p][0][j], written][::1 if p == 0 else -1]
            grad = [torch.addcmul(g, h, dlogdet, value=-1) for g, h in zip(grad, z)]
        dlogdet = dlogdet * bound
        for k in reversed(range(couplings)):
            p, j = k % 2, k // 2
            g_y = grad[1 - p]
            v = second if k == 0 else x[1 - p][0][(k - 1) // 2]
            g_s = torch.addcmul(dlogdet, g_y * v, sc[p][j], value=bound)
            g = g_rows[p][-1][j]
            torch.cat([_tanh_backward(g_s, sq[p][j]), g_y], dim=1, out=g)
            grad[1 - p] = g_y * sc[p][j]
            for i in reversed(range(1, per)):
                g = derivative(torch.mm(g, w[p][i][j], out=work[p]), x[p][i][j],
                               g_rows[p][i - 1][j])
            grad[p] = torch.addmm(grad[p], g, w[p][0][j])
        weight_grads = []
        for p in range(parities):
            for i in range(per):
                weight_grads += [torch.bmm(grads[p][i].transpose(1, 2), inputs[p * per + i]),
                                 grads[p][i].sum(1)]
        return (grad[0], grad[1], None, *weight_grads)


class WeightRows:
    """Each coupling's weights, as views of the stacks: ``forward[p][i]`` is layer ``i``'s
    (transposed weights, biases) for the couplings of parity ``p``, ``backward[p][i]`` its
    weights, one row per coupling.

    Views follow the numbers they look at, so they stay right while the optimizer updates
    the weights in place, and are made again only when a weight moves to other memory
    (another device or dtype, the trainer's flat parameters): two dozen fewer operations a
    step.
    """

    def __init__(self) -> None:
        self.key: tuple[int, ...] = ()
        self.forward: list[list[tuple[tuple[Tensor, ...], tuple[Tensor, ...]]]] = []
        self.backward: list[list[tuple[Tensor, ...]]] = []

    def of(self, weights: list[Tensor], per: int) -> WeightRows:
        """These rows, made again first if ``weights`` do not live where they did."""
        key = tuple(w.data_ptr() for w in weights)
        if key != self.key:  # the views pin the old memory, so its address is not reused
            stacks = _by_parity([w.detach() for w in weights], per)
            self.forward = [[(w.transpose(1, 2).unbind(0), b.unbind(0)) for w, b in layers]
                            for layers in stacks]
            self.backward = [[w.unbind(0) for w, _ in layers] for layers in stacks]
            self.key = key
        return self


def _rows(stacks: list[list[Tensor]] | list[tuple[Tensor, ...]]) -> list[list[tuple[Tensor, ...]]]:
    """Each stacked tensor's rows (one per coupling of its parity), as views made at once."""
    return [[t.unbind(0) for t in stack] for stack in stacks]


def _by_parity(weights: tuple[Tensor, ...] | list[Tensor], per: int
               ) -> list[list[tuple[Tensor, Tensor]]]:
    """The flat ``(w, b, w, b, ...)`` as ``[(w, b), ...]`` layers per parity: ``per`` layers
    for the even couplings' stack, then as many for the odd ones'."""
    pairs = list(zip(weights[0::2], weights[1::2]))
    return [pairs[i:i + per] for i in range(0, len(pairs), per)]
