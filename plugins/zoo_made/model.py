"""MADE: a masked MLP that gives the C logits of every position, each seeing only earlier ones.

``log p(x) = sum_d log softmax(logits_d(x_<d))[x_d]``, all positions in one pass: the masks
(see ``zoo_made.masks``) cut every path from a position to itself and to later ones. With
``K`` masks the model is the uniform mixture of the ``K`` networks that share the weights::

    log p(x) = logsumexp_k log p_k(x) - log K

Masks are applied functionally, ``F.linear(x, weight * mask, bias)`` (``zoo_made.layers``:
with one mask only the weights it keeps are parameters). Orderings and masks are buffers,
saved with the weights.

Sampling visits the positions in order and draws each value with the Gumbel-max trick
(``argmax(logits / T + G)``, one ``[n, C]`` block of uniforms per step). ``sample_naive``
runs one full forward pass per position; ``sample`` (the default) keeps the first layer's
pre-activations and the direct connection's outputs and adds the contribution of each value
as it is drawn, so a step costs a fraction of a forward pass. Both run in float64 with the
same random calls in the same order, so they give the same samples.
"""

from __future__ import annotations

import copy
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.plugin import AutoregressiveModel, ContextInput, ContextSpec
from zoo_made import staircase
from zoo_made.config import MADEConfig
from zoo_made.layers import (
    MaskedLinear,
    MaskedLinearBase,
    PackedLinear,
    WeightAndBias,
    pack_dense,
)
from zoo_made.masks import MaskSet, config_masks

#: What a context adds inside a conditional MADE: a term per hidden layer ``[B, H_l]`` and
#: one for the outputs ``[B, D * O]`` (``MADE.context_terms``).
Terms = tuple[list[Tensor], Tensor]

ACTIVATIONS = {"relu": F.relu, "elu": F.elu, "silu": F.silu, "tanh": torch.tanh}
#: The activations whose in-place form autograd can differentiate (their backward reads the
#: output): on a layer's fresh pre-activations they save a tensor per layer and pass.
IN_PLACE = {"relu": torch.relu_, "tanh": torch.tanh_}


class MADE(AutoregressiveModel):
    """MADE over int64 data ``[B, *shape]`` with values in ``0..levels-1``."""

    def __init__(self, config: MADEConfig):
        super().__init__()
        self.config = config
        self.shape = tuple(config.shape)
        self.levels = config.levels
        self.positions = config.positions
        self.input_width = config.input_width
        self.output_width = config.output_width
        self.activation = ACTIVATIONS[config.activation]
        self.activation_ = IN_PLACE.get(config.activation, self.activation)
        self.bernoulli = config.bernoulli
        self.signed_bits = config.bit_inputs == "signed"
        masks = config_masks(config)
        self.register_buffer("orderings", masks.orderings)
        # A Bernoulli head's signed input unit of each bit value, looked up in the model's
        # dtype: one op per batch where converting and scaling take three (derived, not stored).
        self.register_buffer("bit_signs", torch.tensor([-1.0, 1.0]) if self.bernoulli else None,
                             persistent=False)
        self.embedding = (nn.Embedding(self.levels, config.embedding_dim)
                          if config.inputs == "embedding" else None)
        # One mask: only the live weights are parameters, and those of every layer (with the
        # biases) are one flat parameter, `packed` (see zoo_made.layers for why).
        layer = PackedLinear if config.masks == 1 else MaskedLinear
        built = {name: layer(m, bias=bias) for name, (m, bias) in layer_masks(config, masks).items()}
        self.hidden = nn.ModuleList(built[f"hidden.{i}"] for i in range(len(masks.hidden)))
        self.output = built.get("output")
        self.direct = built.get("direct")
        if any(m.packs for m in built.values()):
            sizes = [m.segment_size for m in built.values()]
            flat = torch.empty(sum(sizes))
            for m, segment in zip(built.values(), flat.split(sizes)):
                m.init_segment(segment)  # in the order the dense layers drew their numbers
            self.packed = nn.Parameter(flat)
            self._index_dense(list(built.values()))
        else:
            self.register_parameter("packed", None)
        self.staircase = self._plan_staircase(list(built.values()))
        # Set to {} on a copy whose weights no longer change (the samplers' float64 twin), to
        # build each mask's dense weights once instead of at every forward pass.
        self.frozen_weights: dict[int, list[WeightAndBias]] | None = None
        full = config.output_rank == 0
        if not full:
            self.projection = nn.Linear(config.output_rank, self.levels, bias=False)
            self.output_bias = nn.Parameter(torch.zeros(self.positions, self.levels))
        else:
            self.projection = None
            self.output_bias = None
        self.dropout = nn.Dropout(config.dropout)
        spec = ContextSpec.of(config)
        if spec:
            # Unmasked: the context is known before the first position, so adding it to every
            # hidden unit and every output keeps the model autoregressive in x.
            self.context_input = ContextInput(spec)
            width = self.context_input.features
            self.context_hidden = nn.ModuleList(nn.Linear(width, layer.out_features, bias=False)
                                                for layer in self.hidden)
            self.context_output = nn.Linear(width, self.positions * self.output_width,
                                            bias=False)

    def context_terms(self, context: Tensor | None) -> Terms | None:
        """What the context adds to each hidden layer and to the outputs: ``([B, H_l]...,
        [B, D * O])``; None for no context."""
        if context is None:
            return None
        features = self.context_input(context).to(self.context_output.weight.dtype)
        return ([layer(features) for layer in self.context_hidden],
                self.context_output(features))

    @property
    def num_masks(self) -> int:
        return self.orderings.shape[0]

    # --- zoo.testing's autoregressive protocol (the conformance kit checks causality) ------

    @property
    def ensemble_size(self) -> int:
        """The ``K`` networks (masks) of the mixture; the kit checks each one."""
        return self.num_masks

    def order(self, k: int = 0) -> Tensor:
        """The flat positions in the generation order of mask ``k``."""
        return self.orderings[k]

    def conditional_logits(self, x: Tensor, k: int = 0, context: Tensor | None = None) -> Tensor:
        """Logits ``[B, C, *shape]`` of network ``k``, from int64 levels ``[B, *shape]`` or a
        float one-hot ``[B, C, *shape]`` (differentiable: the kit's gradient check uses it)."""
        batch = x.shape[0]
        if x.is_floating_point():
            dtype = next(self.parameters()).dtype
            onehot = x.reshape(batch, self.levels, self.positions).transpose(1, 2).to(dtype)
            if self.embedding is not None:
                inputs = onehot @ self.embedding.weight
            elif not self.bernoulli:
                inputs = onehot
            else:  # a Bernoulli head's input unit is the bit: the one-hot's second entry
                inputs = onehot[..., 1:] - onehot[..., :1] if self.signed_bits else onehot[..., 1:]
        else:
            inputs = self.encode(x.reshape(batch, self.positions))
        out = self.logits(inputs, k, self.context_terms(context)).transpose(1, 2)  # [B, C, D]
        return out.reshape(batch, self.levels, *self.shape)

    # --- scoring -------------------------------------------------------------------------

    def encode(self, x: Tensor) -> Tensor:
        """Input units ``[B, D, I]`` of flat values ``[B, D]``: one-hot or embedded."""
        if self.embedding is not None:
            return self.embedding(x)
        if self.bernoulli:
            if self.signed_bits:
                return self.bit_signs.index_select(0, x.reshape(-1)).view(*x.shape, 1)
            return x.unsqueeze(-1).to(self.bit_signs.dtype)
        return F.one_hot(x, self.levels).to(next(self.parameters()).dtype)

    def units(self, x: Tensor) -> Tensor:
        """``encode(x)`` flat, ``[B, D * I]``: what the masked layers take."""
        if self.bernoulli and self.signed_bits and self.embedding is None:
            return self.bit_signs.index_select(0, x.reshape(-1)).view(x.shape)  # fewer views
        return self.encode(x).reshape(x.shape[0], -1)

    def bit_signs_of(self, x: Tensor, units: Tensor) -> Tensor:
        """A Bernoulli head's sign of each bit, -1 or +1, ``[B, D]``: the input units
        themselves when they are signed bits (``units``), else looked up."""
        if self.signed_bits and self.embedding is None:
            return units
        return self.bit_signs.index_select(0, x.reshape(-1)).view(x.shape)

    def logits(self, inputs: Tensor, k: int, terms: Terms | None = None) -> Tensor:
        """Logits ``[B, D, C]`` of every position under mask ``k``, from input units ``[B, D, I]``
        (or flat, ``[B, D * I]``)."""
        return self.as_classes(self.head_logits(inputs, k, terms))

    def as_classes(self, pre: Tensor) -> Tensor:
        """A Bernoulli head's log-odds ``l`` as the two class logits ``(0, l)``; others as they are."""
        if not self.bernoulli:
            return pre
        return torch.cat([torch.zeros_like(pre), pre], dim=-1)

    def head_logits(self, inputs: Tensor, k: int, terms: Terms | None = None) -> Tensor:
        """The head's outputs ``[B, D, O]``: ``C`` logits, or one log-odds (Bernoulli head)."""
        batch = inputs.shape[0]
        pre = self.masked_outputs(inputs.reshape(batch, -1), k, terms)
        pre = pre.view(batch, self.positions, self.output_width)
        if self.projection is not None:
            return self.projection(pre) + self.output_bias
        return pre

    def masked_modules(self) -> dict[str, MaskedLinearBase]:
        """The masked layers by their names, in the order of their segments of ``packed``."""
        layers: dict[str, MaskedLinearBase] = {f"hidden.{i}": m for i, m in enumerate(self.hidden)}
        if self.output is not None:
            layers["output"] = self.output
        if self.direct is not None:
            layers["direct"] = self.direct
        return layers

    def _index_dense(self, layers: list[PackedLinear]) -> None:
        """Where each entry of ``packed`` goes in one buffer that holds every layer's dense
        weight ``[out, in]`` (row-major) and bias, layer after layer (``dense_layers``)."""
        index, self.dense_pieces, self.dense_layout = [], [], []
        offset = 0
        for m in layers:
            self.dense_layout.append((len(self.dense_pieces), (m.out_features, m.in_features),
                                      m.has_bias))
            index.append(m.live_index() + offset)
            self.dense_pieces.append(m.out_features * m.in_features)
            offset += self.dense_pieces[-1]
            if m.has_bias:
                index.append(torch.arange(offset, offset + m.out_features))
                self.dense_pieces.append(m.out_features)
                offset += m.out_features
        self.register_buffer("dense_index", torch.cat(index), persistent=False)

    def _plan_staircase(self, layers: list[MaskedLinearBase]) -> staircase.Plan | None:
        """The blocks a big one-mask model computes its layers in (``zoo_made.staircase``),
        its index maps held as buffers; None where it stays dense."""
        if (self.packed is None or self.direct is not None
                or sum(m.in_features * m.out_features for m in layers) < staircase.MIN_WEIGHTS):
            return None
        found = staircase.plan([m.mask[0] for m in layers], [m.has_bias for m in layers])
        if found is not None:
            for name in ("index", "input_order", "output_order", "output_unorder"):
                self.register_buffer(f"staircase_{name}", getattr(found, name), persistent=False)
        return found

    def _staircase_applies(self, terms: Terms | None) -> bool:
        """Whether the masked layers run as the staircase: a big one-mask model without a
        context, not the samplers' frozen twin (which builds its dense weights once), and not
        under autocast (whose casts the blocks' own backward does not repeat)."""
        return (self.staircase is not None and terms is None and self.frozen_weights is None
                and not torch.is_autocast_enabled(self.packed.device.type))

    def _staircase_outputs(self, h: Tensor, sorted_outputs: bool = False) -> Tensor:
        """``masked_outputs`` of the one mask, block by block (``zoo_made.staircase``), from
        input units already in the staircase's order (``staircase_input_order``); with
        ``sorted_outputs``, in its output order too (``staircase_output_order``)."""
        plan = self.staircase
        buffer = self.packed.new_zeros(sum(plan.sizes))
        pieces = iter(buffer.index_copy_(0, self.staircase_index, self.packed).split(plan.sizes))
        last = len(plan.layers) - 1
        for i, (blocks, has_bias) in enumerate(zip(plan.layers, plan.biases)):
            weights = [next(pieces).view(b - a, p) for a, b, p in blocks]
            bias = next(pieces) if has_bias else None
            h = staircase.BlockLinear.apply(h, blocks, bias, *weights)
            if i < last:
                h = self.activation_(h)
                if self.dropout.p > 0:
                    h = self.dropout(h)
        return h if sorted_outputs else h.index_select(1, self.staircase_output_unorder)

    def dense_layers(self, k: int) -> list[WeightAndBias]:
        """Every masked layer's ``(weight * mask[k] [out, in], bias)``, in ``masked_modules``
        order (differentiable). One mask: one scatter of ``packed`` into a zero buffer (the
        backward pass is one gather), split into the layers' tensors."""
        frozen = self.frozen_weights
        if frozen is not None and k in frozen:
            return frozen[k]
        if self.packed is None:
            weights = [m.dense(k) for m in self.masked_modules().values()]
        else:
            dense = self.packed.new_zeros(sum(self.dense_pieces))
            pieces = dense.index_copy_(0, self.dense_index, self.packed).split(self.dense_pieces)
            weights = [(pieces[i].view(shape), pieces[i + 1] if bias else None)
                       for i, shape, bias in self.dense_layout]
        if frozen is not None:
            frozen[k] = weights
        return weights

    def layer_weights(self, k: int) -> dict[str, WeightAndBias]:
        """``dense_layers(k)`` by the names of the layers."""
        return dict(zip(self.masked_modules(), self.dense_layers(k)))

    def masked_outputs(self, flat: Tensor, k: int, terms: Terms | None = None) -> Tensor:
        """The masked layers' outputs ``[B, D * O]`` from flat input units ``[B, D * I]``
        (plus the context's terms, ``context_terms``, for a conditional model)."""
        if self._staircase_applies(terms):
            return self._staircase_outputs(flat.index_select(1, self.staircase_input_order))
        weights = self.dense_layers(k)
        h = flat
        n = len(self.hidden)
        for i in range(n):
            pre_h = F.linear(h, *weights[i])
            h = self.activation_(pre_h if terms is None else pre_h + terms[0][i])  # both fresh
            if self.dropout.p > 0:  # a module call per layer is a measurable cost per step
                h = self.dropout(h)
        pre = F.linear(h, *weights[n]) if self.output is not None else 0
        if self.direct is not None:
            pre = pre + F.linear(flat, *weights[-1])
        return pre if terms is None else pre + terms[1]

    def log_prob_components(self, x: Tensor, terms: Terms | None = None) -> Tensor:
        """``log p_k(x)`` of each mask: ``[K, B]`` (``x`` already checked, flat ``[B, D]``)."""
        units = self.units(x)
        return torch.stack([self._log_prob_of(x, units, k, terms)
                            for k in range(self.num_masks)])

    def _log_prob_of(self, x: Tensor, units: Tensor, k: int,
                     terms: Terms | None = None) -> Tensor:
        """``log p_k(x)`` ``[B]`` of flat ``x`` ``[B, D]`` and its input units ``[B, D * I]``."""
        if self.bernoulli:
            # log p(x_d) = log sigmoid(s_d l_d) with the sign s_d = +-1 of the bit: two ops on
            # the log-odds [B, D] as they come (each reshape is one more autograd node).
            signs = self.bit_signs_of(x, units)
            if self._staircase_applies(terms) and self.projection is None:
                # The sum over pixels needs no order: the staircase's sorted log-odds against
                # the signs sorted alike (a gather of data, not of a gradient).
                sorted_units = units.index_select(1, self.staircase_input_order)
                odds = self._staircase_outputs(sorted_units, sorted_outputs=True)
                # Signed-bit inputs are the signs, and inputs and outputs sort alike (a pixel
                # seen by many hidden units sees few): then they are sorted already.
                signs = (sorted_units if signs is units and self.staircase.same_order
                         else signs.index_select(1, self.staircase_output_order))
            else:
                odds = self.masked_outputs(units, k, terms)
            return F.logsigmoid(odds * signs).sum(-1)
        logits = self.logits(units, k, terms)
        nll = F.cross_entropy(logits.reshape(-1, self.levels), x.reshape(-1), reduction="none")
        return -nll.view(x.shape).sum(-1)

    def log_prob_checked(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Exact ``log p(x)`` in nats, ``[B]``; the K-mask mixture when there are several masks.

        In training mode with ``mask_training: sample`` one mask, drawn from torch's global
        generator, stands in for the mixture (the MADE paper's order-agnostic training).
        """
        flat = x.reshape(x.shape[0], self.positions)
        terms = self.context_terms(context)
        count = self.num_masks
        if count == 1:
            return self._log_prob_of(flat, self.units(flat), 0, terms)  # no stack of one
        if self.training and self.config.mask_training == "sample":
            k = int(torch.randint(count, ()))
            return self._log_prob_of(flat, self.units(flat), k, terms)
        return torch.logsumexp(self.log_prob_components(flat, terms), 0) - math.log(count)

    # --- sampling ------------------------------------------------------------------------

    def draw(self, n: int, temperature: float, generator: torch.Generator | None,
             known: tuple[Tensor, Tensor] | None, *, fast: bool,
             context: Tensor | None = None) -> Tensor:
        """Ancestral sampling, each sample from the network picked in proportion to
        ``p_k(known)``: with known positions first in every ordering, the mixture's exact
        conditional. ``fast`` updates each hidden layer incrementally; the naive sampler
        runs a full forward pass per position."""
        device = self.orderings.device
        draw_device = generator.device if generator is not None else device
        # float64: the naive and incremental samplers add the same terms in different orders;
        # in double precision that rounding difference cannot change a draw in practice.
        twin = self.float64_twin()
        terms = twin.context_terms(context)
        x = torch.zeros(n, self.positions, dtype=torch.long, device=device)
        where = torch.zeros(n, self.positions, dtype=torch.bool, device=device)
        if known is not None:
            values, mask = known
            where = mask.reshape(n, self.positions).to(device)
            x = torch.where(where, values.reshape(n, self.positions).to(device), x)
        component = twin._choose_components(x, where if known is not None else None,
                                            generator, draw_device, terms)
        groups = []
        for k in range(self.num_masks):
            rows = (component == k).nonzero().squeeze(1)
            if len(rows):
                stepper = (IncrementalStepper if fast else NaiveStepper)(
                    twin, k, x[rows], take_rows(terms, rows))
                groups.append((k, rows, stepper))
        orderings = self.orderings.tolist()
        for t in range(self.positions):
            uniform = torch.rand(n, self.levels, generator=generator, device=draw_device,
                                 dtype=torch.float64).to(device)
            gumbel = -torch.log(-torch.log(uniform))
            for k, rows, stepper in groups:
                d = orderings[k][t]
                logits = stepper.logits(d)
                drawn = torch.argmax(logits / temperature + gumbel[rows], dim=-1)
                value = torch.where(where[rows, d], x[rows, d], drawn)
                x[rows, d] = value
                stepper.update(d, value)
        return x.view(n, *self.shape)

    def float64_twin(self) -> MADE:
        """A float64 copy in eval mode (no dropout) that both samplers compute with."""
        twin = copy.deepcopy(self)
        twin = twin.to(torch.float64).eval()
        twin.frozen_weights = {}
        return twin

    def _choose_components(self, x: Tensor, known: Tensor | None,
                           generator: torch.Generator | None, draw_device,
                           terms: Terms | None = None) -> Tensor:
        """The network (mask) each sample is drawn from; see ``sample``."""
        n, count = x.shape[0], self.num_masks
        if count == 1:
            return torch.zeros(n, dtype=torch.long, device=x.device)
        log_w = torch.zeros(n, count, dtype=torch.float64, device=x.device)
        if known is not None:
            # Known positions are a prefix of ordering k when, read in that order, the
            # known flags never go from false back to true.
            in_order = known[:, self.orderings]  # [n, K, D]
            prefix = (in_order[..., 1:] <= in_order[..., :-1]).all(-1).all(-1)
            if prefix.any():
                rows = prefix.nonzero().squeeze(1)
                inputs = self.encode(x[rows])
                for k in range(count):
                    logp = F.log_softmax(self.logits(inputs, k, take_rows(terms, rows)), -1)
                    picked = logp.gather(-1, x[rows, :, None]).squeeze(-1)
                    log_w[rows, k] = (picked * known[rows]).sum(-1)
        weights = torch.softmax(log_w, -1).to(draw_device)
        return torch.multinomial(weights, 1, generator=generator).squeeze(1).to(x.device)


def take_rows(terms: Terms | None, rows: Tensor) -> Terms | None:
    """The context terms of some of the examples."""
    if terms is None:
        return None
    return [t[rows] for t in terms[0]], terms[1][rows]


class NaiveStepper:
    """Reference: recompute the whole network for the current values at every position."""

    def __init__(self, model: MADE, k: int, x: Tensor, terms: Terms | None = None):
        self.model, self.k, self.x, self.terms = model, k, x.clone(), terms

    def logits(self, d: int) -> Tensor:
        return self.model.logits(self.model.encode(self.x), self.k, self.terms)[:, d]

    def update(self, d: int, value: Tensor) -> None:
        self.x[:, d] = value


class IncrementalStepper:
    """Fast sampler for one mask: the first layer's pre-activations (and the direct outputs of
    every position) are sums over input positions, so they are kept and, once the value of a
    position is drawn, its column block is added. A step then costs the deeper layers plus
    the output rows of one position, instead of a full forward pass."""

    def __init__(self, model: MADE, k: int, x: Tensor, terms: Terms | None = None):
        self.model, self.k = model, k
        n, positions = x.shape
        width, out = model.input_width, model.output_width
        layers = list(model.hidden)
        # A conditional model's context terms: a per-example bias on every layer.
        hidden_terms = terms[0] if terms is not None else [None] * len(layers)
        self.out_term = terms[1] if terms is not None else None
        weights = model.layer_weights(k)
        hidden = [weights[f"hidden.{i}"] for i in range(len(layers))]
        self.deeper = [(weight, bias, term)
                       for (weight, bias), term in zip(hidden[1:], hidden_terms[1:])]
        if layers:
            first, bias = hidden[0]
            # [D, I, H]: the block of input units of one position, ready for `inputs @ block`.
            self.first = first.t().reshape(positions, width, -1)
            self.pre = bias.expand(n, -1).clone()
            if hidden_terms[0] is not None:
                self.pre += hidden_terms[0]
        if model.output is not None:
            weight, bias = weights["output"]
            self.out_weight = weight.view(positions, out, -1)
            self.out_bias = bias.view(positions, out) if bias is not None else None
        if model.direct is not None:
            weight, bias = weights["direct"]
            self.direct = weight.t().reshape(positions, width, -1)
            self.direct_pre = (bias.expand(n, -1).clone() if bias is not None
                               else x.new_zeros(n, positions * out, dtype=self.direct.dtype))

    def logits(self, d: int) -> Tensor:
        model, out = self.model, self.model.output_width
        pre = 0
        if model.output is not None:
            h = model.activation(self.pre)
            for weight, bias, term in self.deeper:
                h = F.linear(h, weight, bias)
                h = model.activation(h if term is None else h + term)
            bias = self.out_bias[d] if self.out_bias is not None else None
            pre = F.linear(h, self.out_weight[d], bias)
        if model.direct is not None:
            pre = pre + self.direct_pre[:, d * out:(d + 1) * out]
        if self.out_term is not None:
            pre = pre + self.out_term[:, d * out:(d + 1) * out]
        if model.projection is not None:
            return model.projection(pre) + model.output_bias[d]
        return model.as_classes(pre)

    def update(self, d: int, value: Tensor) -> None:
        inputs = self.model.encode(value)  # [n, I]
        if self.model.output is not None:
            self.pre.addmm_(inputs, self.first[d])
        if self.model.direct is not None:
            self.direct_pre.addmm_(inputs, self.direct[d])


def layer_masks(config: MADEConfig, masks: MaskSet) -> dict[str, tuple[Tensor, bool]]:
    """The masks of every masked layer and whether it has a bias, by the name of the layer in
    ``MADE`` (in the order of their segments of ``MADE.packed``)."""
    # The per-position bias lives in the output layer, or after the low-rank projection.
    full = config.output_rank == 0
    layers = {f"hidden.{i}": (m, True) for i, m in enumerate(masks.hidden)}
    if masks.output is not None:
        layers["output"] = (masks.output, full)
    if masks.direct is not None:
        layers["direct"] = (masks.direct, full and masks.output is None)
    return layers


#: Where a one-mask layer's numbers were stored before ``MADE.packed``: per layer.
LAYER_PREFIXES = ("hidden.", "output.", "direct.")


def pack_stored_weights(config: MADEConfig, tensors: dict[str, Any]) -> dict[str, Any]:
    """Stored tensors in today's layout, ``packed``: every one-mask layer's live weights and
    bias, layer after layer. Two older layouts are converted: each layer's ``live_weight``
    and ``bias``, and before that its dense ``weight`` [out, in], packed with the mask the
    config derives (what the file's own mask holds is checked on load, as for any derived
    buffer). Tensors that do not fit are left for the load's checks to report."""
    old_layout = any(k.startswith(LAYER_PREFIXES) and k.endswith((".weight", ".live_weight"))
                     for k in tensors)
    if config.masks != 1 or not old_layout or "packed" in tensors:
        return tensors  # today's layout (or an ensemble's): no masks to build
    out = dict(tensors)
    parts = []
    for name, (mask, has_bias) in layer_masks(config, config_masks(config)).items():
        live, dense = out.pop(f"{name}.live_weight", None), out.pop(f"{name}.weight", None)
        bias = out.pop(f"{name}.bias", None) if has_bias else None
        if live is None and dense is not None and dense.shape == mask.shape[1:]:
            live = pack_dense(dense, mask[0])
        if (live is None or live.shape != (int(mask.sum()),)
                or has_bias and (bias is None or bias.shape != mask.shape[1:2])):
            return tensors
        parts += [live.reshape(-1), *([bias] if has_bias else [])]
    out["packed"] = torch.cat(parts)
    return out
