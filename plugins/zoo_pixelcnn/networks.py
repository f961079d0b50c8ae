"""The two PixelCNN networks, each in two forms: the whole image at once, and pixel by pixel.

``forward(e)`` maps embedded pixels ``[n, E, H, W]`` to logits ``[n, levels, H, W]`` in one
pass; it is what training, ``log_prob`` and the reference sampler use. With ``table`` (an
embedding ``[L, E]``) ``e`` is instead the one-hot ``[n, L, H, W]`` of the pixel values and
the first layer folds the table into its kernel (``MaskedConv2d.forward_embedded``). ``stepper(...)``
returns an object that produces the logits of one pixel at a time, in raster order, from
per-layer caches: because every layer is causal, the output of any layer at pixel ``p``
depends only on earlier pixels, so it can be computed once, when the sampler reaches ``p``,
and reused by every later pixel (the idea of Fast PixelCNN++, Ramachandran et al., 2017).
Each step then costs a few matrix-vector products per layer instead of a full pass.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.autograd.function import once_differentiable

from zoo.plugin import ContextSpec
from zoo_pixelcnn.config import PixelCNNConfig
from zoo_pixelcnn.layers import MaskedConv2d, RowCache, pointwise, raster_mask, vertical_mask


def gate(a: Tensor, dim: int = 1) -> Tensor:
    """The gated activation ``tanh(a1) * sigmoid(a2)`` over the two halves of ``dim``."""
    value, gate_ = a.chunk(2, dim=dim)
    return torch.tanh(value) * torch.sigmoid(gate_)


class OutputHead(nn.Module):
    """ReLU -> 1x1 -> ReLU -> 1x1 to ``levels`` logits (position-wise, hence causal)."""

    def __init__(self, channels: int, hidden: int, levels: int):
        super().__init__()
        self.hidden = nn.Conv2d(channels, hidden, 1)
        self.out = nn.Conv2d(hidden, levels, 1)

    def forward(self, x: Tensor, inplace: bool = False) -> Tensor:
        """The logits of ``x``; ``inplace``: its ReLU may overwrite ``x`` (a network's
        last activation, which nothing else reads)."""
        return self.out(self.hidden(F.relu(x, inplace=inplace)).relu_())  # a fresh output

    def frozen(self, n: int, like: Tensor) -> FrozenHead:
        return FrozenHead(self, n, like)


class FrozenHead:
    """``OutputHead`` at one pixel of ``n`` images, its intermediates in buffers made once
    (at this size allocating a result costs as much as computing it). Each ReLU output has
    a constant-1 last column and each weight a bias last row, so a layer is one ``mm``
    written in place (``addmm`` would first copy the broadcast bias into its output)."""

    def __init__(self, head: OutputHead, n: int, like: Tensor):
        self.hidden, self.out = with_bias_row(head.hidden), with_bias_row(head.out)
        channels, hidden = head.hidden.weight.shape[1], head.hidden.weight.shape[0]
        self.relu_one = like.new_ones(n, channels + 1)
        self.relu = self.relu_one[:, :channels]
        self.inner_one = like.new_ones(n, hidden + 1)
        self.inner = self.inner_one[:, :hidden]
        self.logits = like.new_empty(n, head.out.weight.shape[0])

    def __call__(self, v: Tensor, out: Tensor | None = None) -> Tensor:
        """The logits ``[n, levels]`` at a pixel whose features are ``v``, into ``out``, or
        else a buffer valid until the next call."""
        torch.clamp_min(v, 0, out=self.relu)
        torch.mm(self.relu_one, self.hidden, out=self.inner).relu_()
        return torch.mm(self.inner_one, self.out, out=self.logits if out is None else out)


def with_bias_row(layer: nn.Conv2d) -> Tensor:
    """A 1x1 convolution as one matrix ``[in + 1, out]``: its weight, then its bias, to
    multiply a pixel's channels followed by a constant 1."""
    affine = pointwise(layer)
    return torch.cat([affine.weight_t, affine.bias[None]])


class Conditioning(nn.Module):
    """A conditional network's context maps: one linear map (no bias) of the context's
    features per layer, whose output is added inside that layer (``context_widths``)."""

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        features = ContextSpec.of(config).size
        self.maps = nn.ModuleList(nn.Linear(features, width, bias=False)
                                  for width in config.context_widths())

    def forward(self, features: Tensor) -> list[Tensor]:
        """Each layer's term ``[B, width]`` for context features ``[B, F]``."""
        return [m(features.to(m.weight.dtype)) for m in self.maps]


def conditioning(config: PixelCNNConfig) -> Conditioning | None:
    return Conditioning(config) if ContextSpec.of(config) else None


def terms_of(net: nn.Module, features: Tensor | None) -> list[Tensor | None]:
    """Every layer's context term (None everywhere for no context)."""
    if features is None or net.condition is None:
        return [None] * (len(net.blocks) + 1)
    return net.condition(features)


def plus(x: Tensor, term: Tensor | None) -> Tensor:
    """``x`` ``[B, C, H, W]`` plus a per-example term ``[B, C]`` at every pixel."""
    return x if term is None else x + term[:, :, None, None]


class Stepper:
    """Logits of one pixel at a time, in raster order, from per-layer row caches.

    Call ``step(i, j)`` for every pixel in raster order and, after each, ``write(j, f)``
    with the input features ``f`` ``[n, E]`` of the value the pixel took (with ``table``,
    an embedding folded into the first layer, ``f`` is the value's one-hot ``[n, L]``). Nothing about the
    image is needed up front: a step only reads pixels already written.
    """

    def __init__(self, n: int, width: int, pad: int, in_channels: int, like: Tensor,
                 input_rows: int):
        self.n, self.width, self.pad, self.like = n, width, pad, like
        self.caches: list[RowCache] = []
        self.inputs = self.cache(in_channels, input_rows)

    def cache(self, channels: int, above: int) -> RowCache:
        """A cache of ``channels`` keeping ``above`` rows above the current one."""
        cache = RowCache(self.n, self.width, self.pad, channels, self.like, above)
        self.caches.append(cache)
        return cache

    def write(self, j: int, features: Tensor) -> None:
        """Record the input features of pixel ``j`` of the current row, once drawn."""
        self.inputs.slots[j].copy_(features)

    def write_values(self, j: int, table: Tensor, values: Tensor) -> None:
        """``write(j, table[values])`` for int64 ``values`` ``[n]``, without a copy: the rows
        of the feature table ``[levels, features]`` are gathered straight into the cache."""
        torch.index_select(table, 0, values, out=self.inputs.slots[j])

    def step(self, i: int, j: int, out: Tensor | None = None) -> Tensor:
        """The logits ``[n, levels]`` of pixel ``(i, j)``, written into ``out`` if given
        (otherwise a buffer, valid until the next step)."""
        if j == 0 and i > 0:
            for cache in self.caches:
                cache.next_row()
        return self.compute(j, out)

    def compute(self, j: int, out: Tensor | None = None) -> Tensor:
        raise NotImplementedError


# --- plain ------------------------------------------------------------------------------


class ReluThenPointwise(torch.autograd.Function):
    """``conv1x1(relu(x))``, whose backward applies the ReLU to the convolution's input
    gradient in place: through autograd the ReLU's backward writes a new tensor of ``x``'s
    size, which at MNIST size is 12.8 MB a block for the CPU to fault in and fill."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
        r = torch.relu(x)
        ctx.save_for_backward(r, weight)
        ctx.has_bias = bias is not None
        return F.conv2d(r, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        r, weight = ctx.saved_tensors
        wants = ctx.needs_input_grad
        grad_r, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad, r, weight, [weight.shape[0]] if ctx.has_bias else None, [1, 1], [0, 0],
            [1, 1], False, [0, 0], 1, [wants[0], wants[1], ctx.has_bias and wants[2]])
        if grad_r is not None:  # ours alone: overwrite it with the ReLU's backward
            torch.ops.aten.threshold_backward.grad_input(grad_r, r, 0, grad_input=grad_r)
        return grad_r, grad_weight, grad_bias if ctx.has_bias else None


class ResidualBlock(nn.Module):
    """``x + 1x1(ReLU(masked kxk type B(ReLU(1x1(ReLU(x))))))`` with a bottleneck of half width."""

    def __init__(self, channels: int, kernel: int, dropout: float):
        super().__init__()
        bottleneck = max(1, channels // 2)
        self.reduce = nn.Conv2d(channels, bottleneck, 1)
        self.conv = MaskedConv2d(bottleneck, bottleneck,
                                 raster_mask(kernel, kernel, include_center=True))
        self.expand = nn.Conv2d(bottleneck, channels, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, term: Tensor | None = None) -> Tensor:
        # ReLUs and the sum in place on the fresh outputs of the convolutions (whose
        # backward reads their inputs, not their outputs): at MNIST size each saved copy of a
        # [B, C, 28, 28] activation is a new buffer the CPU has to fault in and fill.
        u = ReluThenPointwise.apply(x, self.reduce.weight, self.reduce.bias).relu_()
        y = self.dropout(plus(self.conv(u), term).relu_())
        return self.expand(y).add_(x)


class PlainNet(nn.Module):
    """Type-A ``first_kernel`` convolution, ``layers`` residual blocks, 1x1 head."""

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        k0, h = config.first_kernel, config.channels
        self.first = MaskedConv2d(config.input_channels, h,
                                  raster_mask(k0, k0, include_center=False))
        self.blocks = nn.ModuleList(
            ResidualBlock(h, config.kernel, config.dropout) for _ in range(config.layers)
        )
        self.head = OutputHead(h, config.head_channels, config.levels)
        self.pad = max(config.first_kernel, config.kernel) // 2
        self.condition = conditioning(config)

    def forward(self, e: Tensor, table: Tensor | None = None,
                context: Tensor | None = None) -> Tensor:
        terms = terms_of(self, context)
        x = self.first(e) if table is None else self.first.forward_embedded(e, table)
        x = plus(x, terms[0])
        for block, term in zip(self.blocks, terms[1:]):
            x = block(x, term)
        return self.head(x, inplace=True)

    def stepper(self, n: int, width: int, like: Tensor, context: Tensor | None = None,
                table: Tensor | None = None) -> PlainStepper:
        return PlainStepper(self, n, width, like, context, table)


class PlainStepper(Stepper):
    """Pixel-by-pixel evaluation of a ``PlainNet``.

    The only state a later pixel needs is the input of each masked convolution; the residual
    stream at a pixel is used at that pixel only. Each masked convolution's outputs along
    the row live in a row buffer: its part from the rows above is written there when the
    sampler enters the row, and the current row's part is added in place at each pixel. Per
    pixel and block: the ReLU of the stream, the reduction (one ``mm`` into the cache slot,
    its bias on a constant-1 column), its ReLU, the convolution's current-row part, its ReLU,
    and the expansion added in place to the stream: six operations, no allocation, no copy.
    """

    def __init__(self, net: PlainNet, n: int, width: int, like: Tensor,
                 context: Tensor | None = None, table: Tensor | None = None):
        self.first = net.first.frozen(table)
        super().__init__(n, width, net.pad, self.first.weight.shape[1], like,
                         net.first.weight.shape[2] // 2)
        self.terms = [t if t is None else t.detach() for t in terms_of(net, context)]
        channels = net.first.weight.shape[0]
        # The first layer's row buffer holds, at each pixel, the residual stream.
        self.stream = like.new_empty(n, width, channels)
        self.convs, self.sources, self.outputs = [self.first], [self.inputs], [self.stream]
        self.first_patches, self.stream_at = self.first.patches(self.inputs), self.stream.unbind(1)
        self.blocks = []
        for block in net.blocks:
            width_, rows = block.conv.weight.shape[1], block.conv.weight.shape[2] // 2
            conv, cache = block.conv.frozen(), self.cache(width_, rows)
            # The convolution's row buffer, then a constant-1 column for the expansion's bias.
            out_one = like.new_ones(n, width, conv.weight.shape[0] + 1)
            self.convs.append(conv)
            self.sources.append(cache)
            self.outputs.append(out_one[:, :, :-1])
            self.blocks.append((with_bias_row(block.reduce), conv.current_t,
                                with_bias_row(block.expand), cache.slots, conv.patches(cache),
                                out_one[:, :, :-1].unbind(1), out_one.unbind(1)))
        self.head = net.head.frozen(n, like)
        # The stream's ReLU, then a constant 1 for the reduction's bias.
        self.relu_one = like.new_ones(n, channels + 1)
        self.relu = self.relu_one[:, :channels]

    def start_row(self) -> None:
        """Every masked convolution's part from the rows above (context term included),
        for the whole row: one matrix product each, into the row buffers."""
        for conv, source, out, term in zip(self.convs, self.sources, self.outputs, self.terms):
            conv.above_row_into(source, out)
            if term is not None:
                out.add_(term[:, None])

    def compute(self, j: int, out: Tensor | None = None) -> Tensor:
        if j == 0:
            self.start_row()
        relu, relu_one = self.relu, self.relu_one
        x = self.stream_at[j]
        x.addmm_(self.first_patches[j], self.first.current_t)
        for reduce, current_t, expand, slots, patches, conv, conv_one in self.blocks:
            torch.clamp_min(x, 0, out=relu)
            torch.mm(relu_one, reduce, out=slots[j]).relu_()
            conv[j].addmm_(patches[j], current_t).relu_()
            x.addmm_(conv_one[j], expand)  # x + y @ W + bias
        return self.head(x, out)


# --- gated ------------------------------------------------------------------------------


class GatedBlock(nn.Module):
    """One gated layer: vertical kxk (rows up to the centre), horizontal 1xk (up to the
    centre), a 1x1 link from the vertical to the horizontal stack, a residual 1x1."""

    def __init__(self, channels: int, kernel: int, dropout: float):
        super().__init__()
        h = channels
        self.vertical = MaskedConv2d(h, 2 * h, vertical_mask(kernel, kernel,
                                                             include_center_row=True))
        self.horizontal = MaskedConv2d(h, 2 * h, raster_mask(1, kernel, include_center=True))
        self.link = nn.Conv2d(2 * h, 2 * h, 1)
        self.residual = nn.Conv2d(h, h, 1)
        self.dropout = nn.Dropout(dropout)

    def forward(self, v: Tensor, h: Tensor,
                term: Tensor | None = None) -> tuple[Tensor, Tensor]:
        v_term, h_term = (None, None) if term is None else term.chunk(2, dim=1)
        v_pre = plus(self.vertical(v), v_term)
        h_pre = plus(self.horizontal(h) + self.link(v_pre), h_term)
        return gate(v_pre), h + self.residual(self.dropout(gate(h_pre)))


class GatedNet(nn.Module):
    """Gated PixelCNN without blind spot.

    The vertical stack at row ``i`` only sees rows above ``i`` (its first layer is masked to
    the rows strictly above, later ones read rows up to their own, whose features already
    stop above ``i``), over the whole kernel width; the horizontal stack sees the pixels to
    the left on the same row; the link feeds the vertical features into the horizontal
    stack at the same pixel. Together they cover every earlier pixel in a square window, so
    there is no blind spot.
    """

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        k0, h, e = config.first_kernel, config.channels, config.input_channels
        self.channels = h
        self.first_vertical = MaskedConv2d(e, 2 * h, vertical_mask(k0, k0,
                                                                   include_center_row=False))
        self.first_horizontal = MaskedConv2d(e, 2 * h, raster_mask(1, k0, include_center=False))
        self.first_link = nn.Conv2d(2 * h, 2 * h, 1)
        self.blocks = nn.ModuleList(
            GatedBlock(h, config.kernel, config.dropout) for _ in range(config.layers)
        )
        self.head = OutputHead(h, config.head_channels, config.levels)
        self.pad = max(config.first_kernel, config.kernel) // 2
        self.condition = conditioning(config)

    def forward(self, e: Tensor, table: Tensor | None = None,
                context: Tensor | None = None) -> Tensor:
        terms = terms_of(self, context)
        if table is None:
            v_pre, h_first = self.first_vertical(e), self.first_horizontal(e)
        else:
            v_pre = self.first_vertical.forward_embedded(e, table)
            h_first = self.first_horizontal.forward_embedded(e, table)
        v_term, h_term = (None, None) if terms[0] is None else terms[0].chunk(2, dim=1)
        v_pre = plus(v_pre, v_term)
        v = gate(v_pre)
        h = gate(plus(h_first + self.first_link(v_pre), h_term))
        for block, term in zip(self.blocks, terms[1:]):
            v, h = block(v, h, term)
        return self.head(h)

    def stepper(self, n: int, width: int, like: Tensor, context: Tensor | None = None,
                table: Tensor | None = None) -> GatedStepper:
        return GatedStepper(self, n, width, like, context, table)


class GatedStepper(Stepper):
    """Pixel-by-pixel evaluation of a ``GatedNet``.

    The vertical stack of row ``i`` depends only on rows above it, so it is computed for the
    whole row when the sampler enters the row (one small convolution per layer over a strip
    a kernel high); the horizontal stack is then computed one pixel at a time.
    """

    def __init__(self, net: GatedNet, n: int, width: int, like: Tensor,
                 context: Tensor | None = None, table: Tensor | None = None):
        first = net.first_vertical.frozen(table), net.first_horizontal.frozen(table)
        super().__init__(n, width, net.pad, first[0].weight.shape[1], like,
                         net.first_vertical.weight.shape[2] // 2)
        h = net.channels
        # Each layer's context terms for the vertical and the horizontal gates, [n, 2h] each.
        self.terms = [(None, None) if t is None else t.detach().chunk(2, dim=1)
                      for t in terms_of(net, context)]
        self.layers = [(*first, pointwise(net.first_link), None)]
        for block in net.blocks:
            self.layers.append((block.vertical.frozen(), block.horizontal.frozen(),
                                pointwise(block.link), with_bias_row(block.residual)))
        # Every layer's vertical and horizontal outputs (of the horizontal ones only the
        # current row is ever read).
        rows = [b.vertical.weight.shape[2] // 2 for b in net.blocks] + [0]  # its reader's
        self.vertical = [self.cache(h, above) for above in rows]
        self.horizontal = [self.cache(h, 0) for _ in self.layers]
        sources = [self.inputs] + self.horizontal[:-1]
        self.patches = [layer[1].patches(source) for layer, source in zip(self.layers, sources)]
        self.rows: list[tuple[tuple[Tensor, ...], ...]] = []
        self.head = net.head.frozen(n, like)
        # Buffers for one pixel: a layer's gate (then a 1 for the residual's bias).
        self.gated_one = like.new_ones(n, h + 1)
        self.gated = self.gated_one[:, :h]

    def start_row(self) -> None:
        """The vertical stack along the row, and each layer's horizontal gate input from the
        vertical link, the biases and the context, for the whole row: a row buffer per
        layer, to which each pixel adds its current-row part in place."""
        self.rows = []
        source = self.inputs
        h = self.gated.shape[1]
        for (vertical, horizontal, link, _), out, (v_term, h_term) in zip(
                self.layers, self.vertical, self.terms):
            v_pre = vertical.row(source)  # [n, W, 2h]
            if v_term is not None:
                v_pre = v_pre + v_term[:, None, :]
            out.set_row(gate(v_pre, dim=-1))
            pre = link(v_pre.reshape(-1, v_pre.shape[-1])).view(v_pre.shape)
            pre = pre + horizontal.bias  # a 1 x k horizontal kernel reads no rows above
            if h_term is not None:
                pre.add_(h_term[:, None])
            self.rows.append((pre.unbind(1), pre[..., :h].unbind(1), pre[..., h:].unbind(1)))
            source = out

    def compute(self, j: int, out: Tensor | None = None) -> Tensor:
        if j == 0:
            self.start_row()
        h = None
        gated, gated_one = self.gated, self.gated_one
        for (_, horizontal, _, residual), patches, (pre, value, gate_), cache in zip(
                self.layers, self.patches, self.rows, self.horizontal):
            pre[j].addmm_(patches[j], horizontal.current_t)
            torch.tanh(value[j], out=gated)
            slot = cache.slots[j]
            if residual is None:
                torch.mul(gated, gate_[j].sigmoid_(), out=slot)
            else:
                gated.mul_(gate_[j].sigmoid_())
                torch.addmm(h, gated_one, residual, out=slot)  # h + g @ W + bias
            h = slot
        return self.head(h, out)
