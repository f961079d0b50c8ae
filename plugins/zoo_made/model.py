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
from zoo_made.config import MADEConfig
from zoo_made.layers import MaskedLinear, MaskedLinearBase, PackedLinear, pack_dense
from zoo_made.masks import MaskSet, config_masks

#: What a context adds inside a conditional MADE: a term per hidden layer ``[B, H_l]`` and
#: one for the outputs ``[B, D * O]`` (``MADE.context_terms``).
Terms = tuple[list[Tensor], Tensor]

ACTIVATIONS = {"relu": F.relu, "elu": F.elu, "silu": F.silu, "tanh": torch.tanh}


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
        # One mask: only the live weights are parameters (see zoo_made.layers for why).
        layer = PackedLinear if config.masks == 1 else MaskedLinear
        self.hidden = nn.ModuleList(layer(m) for m in masks.hidden)
        # The per-position bias lives in the output layer, or after the low-rank projection.
        full = config.output_rank == 0
        self.output = layer(masks.output, bias=full) if masks.output is not None else None
        self.direct = (layer(masks.direct, bias=full and self.output is None)
                       if masks.direct is not None else None)
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

    def logits(self, inputs: Tensor, k: int, terms: Terms | None = None) -> Tensor:
        """Logits ``[B, D, C]`` of every position under mask ``k``, from input units ``[B, D, I]``."""
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

    def masked_outputs(self, flat: Tensor, k: int, terms: Terms | None = None) -> Tensor:
        """The masked layers' outputs ``[B, D * O]`` from flat input units ``[B, D * I]``
        (plus the context's terms, ``context_terms``, for a conditional model)."""
        h = flat
        for i, layer in enumerate(self.hidden):
            pre_h = layer(h, k)
            h = self.activation(pre_h if terms is None else pre_h + terms[0][i])
            if self.dropout.p > 0:  # a module call per layer is a measurable cost per step
                h = self.dropout(h)
        pre = self.output(h, k) if self.output is not None else 0
        if self.direct is not None:
            pre = pre + self.direct(flat, k)
        return pre if terms is None else pre + terms[1]

    def log_prob_components(self, x: Tensor, terms: Terms | None = None) -> Tensor:
        """``log p_k(x)`` of each mask: ``[K, B]`` (``x`` already checked, flat ``[B, D]``)."""
        inputs = self.encode(x)
        return torch.stack([self._log_prob_of(x, inputs, k, terms)
                            for k in range(self.num_masks)])

    def _log_prob_of(self, x: Tensor, inputs: Tensor, k: int,
                     terms: Terms | None = None) -> Tensor:
        if self.bernoulli:
            # One fused, numerically stable op: -log sigmoid(+-l) summed over positions, on
            # the log-odds [B, D] as they come (each reshape is one more autograd node).
            odds = self.masked_outputs(inputs.reshape(x.shape[0], -1), k, terms)
            nll = F.binary_cross_entropy_with_logits(odds, x.to(odds.dtype), reduction="none")
            return -nll.sum(-1)
        logits = self.logits(inputs, k, terms)
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
            return self._log_prob_of(flat, self.encode(flat), 0, terms)  # no stack of one
        if self.training and self.config.mask_training == "sample":
            k = int(torch.randint(count, ()))
            return self._log_prob_of(flat, self.encode(flat), k, terms)
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
        for module in twin.modules():
            if isinstance(module, MaskedLinearBase):
                module.frozen = {}
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
        self.deeper = [(layer.masked_weight(k), layer.bias, term)
                       for layer, term in zip(layers[1:], hidden_terms[1:])]
        if layers:
            first = layers[0]
            # [D, I, H]: the block of input units of one position, ready for `inputs @ block`.
            self.first = first.masked_weight(k).t().reshape(positions, width, -1)
            self.pre = first.bias.expand(n, -1).clone()
            if hidden_terms[0] is not None:
                self.pre += hidden_terms[0]
        if model.output is not None:
            self.out_weight = model.output.masked_weight(k).view(positions, out, -1)
            bias = model.output.bias
            self.out_bias = bias.view(positions, out) if bias is not None else None
        if model.direct is not None:
            self.direct = model.direct.masked_weight(k).t().reshape(positions, width, -1)
            bias = model.direct.bias
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


def masked_layers(masks: MaskSet) -> dict[str, Tensor]:
    """The masks of every masked layer, by the name of the layer in ``MADE``."""
    layers = {f"hidden.{i}": m for i, m in enumerate(masks.hidden)}
    if masks.output is not None:
        layers["output"] = masks.output
    if masks.direct is not None:
        layers["direct"] = masks.direct
    return layers


def pack_stored_weights(config: MADEConfig, tensors: dict[str, Any]) -> dict[str, Any]:
    """Stored tensors with every one-mask layer's dense ``weight`` [out, in] (the layout
    before ``PackedLinear``) replaced by its ``live_weight``, packed with the mask the config
    derives: what the file's own mask holds is checked on load, as for any derived buffer. A
    weight of another shape is left for the load's checks to report."""
    old_layout = any(k.startswith(("hidden.", "output.", "direct.")) and k.endswith(".weight")
                     for k in tensors)
    if config.masks != 1 or not old_layout:  # today's layout: no masks to build
        return tensors
    out = dict(tensors)
    for name, mask in masked_layers(config_masks(config)).items():
        dense = out.get(f"{name}.weight")
        if dense is None or f"{name}.live_weight" in out or dense.shape != mask.shape[1:]:
            continue
        out[f"{name}.live_weight"] = pack_dense(dense, mask[0])
        del out[f"{name}.weight"]
    return out
