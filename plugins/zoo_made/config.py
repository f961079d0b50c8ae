"""The ``made`` family's config: validated before anything is allocated (no torch at import).

Both the family (``family.py``) and the model (``model.py``) import it; neither imports the other's
module at import time."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from zoo.plugin import ConfigError, ContextFields, bounds, check_shape_field, context_parameters

#: Upper limits checked before anything is allocated.
MAX_POSITIONS = 1 << 20
MAX_PARAMETERS = 1_000_000_000
MAX_MASK_ENTRIES = 4_000_000_000


@dataclass(frozen=True)
class MADEConfig(ContextFields):
    """A masked autoregressive MLP over discrete data of shape ``shape`` with ``levels`` values.

    The ``D = prod(shape)`` positions are modelled in an ordering (``natural``: raster order,
    ``random``: a permutation drawn with ``seed``). Each position gets ``levels`` logits from
    an MLP with hidden widths ``hidden`` whose weights are masked so that it only sees the
    positions before it.

    - ``inputs``: ``onehot`` (``levels`` inputs per position) or ``embedding`` (a learned
      ``embedding_dim``-vector per value, shared by all positions; the choice for large
      ``levels * D``).
    - ``output_rank``: 0 gives a full output layer (hidden -> ``D * levels``); ``r > 0`` a
      low-rank one: hidden -> ``D * r`` (masked), then a shared ``r -> levels`` projection plus
      a per-position bias.
    - ``direct``: also connect the inputs straight to the outputs (masked, strictly earlier).
    - ``masks``: ``K`` orderings/connectivities. With ``K > 1`` the model is the uniform
      mixture of the ``K`` autoregressive models, ``log p = logsumexp_k log p_k - log K``
      (order-agnostic with ``ordering: random``, connectivity-agnostic with ``natural``).
    - ``mask_training``: ``mixture`` trains that exact mixture likelihood; ``sample`` trains
      one randomly chosen mask per mini-batch (as in the MADE paper), which is cheaper and
      regularises; evaluation always uses the mixture.
    - ``connectivity``: hidden-unit degrees drawn at ``random`` (MADE) or spread ``even``-ly.
    - ``dropout`` on hidden units, during training only.
    - ``head``: ``categorical`` gives ``levels`` logits per position (a softmax);
      ``bernoulli`` (two levels only) gives one logit per position, the log-odds of a 1, and
      with one-hot inputs feeds each position as one unit (its bit). That is the same model
      family with half the input and output weights, hence faster per step. ``auto`` (the
      default) is ``bernoulli`` for two levels with a full output layer, else ``categorical``.
    - ``bit_inputs``: how that one input unit carries a bit: ``signed`` (-1 or +1) or
      ``binary`` (0 or 1). The same model family; centred inputs train as fast per step as
      the two-unit one-hot (binary ones end 0.2 to 0.3 nats behind on binarized digits at
      2000 steps of Adam at 1e-3).
    - ``classes`` / ``context`` (``zoo.plugin.context``): a conditional MADE. The context
      enters every hidden layer and the output layer through an unmasked linear map, as in
      MAF's conditional MADE, so every position (the first included) sees it and no
      position sees a later one.
    """

    shape: tuple[int, ...]
    levels: int = field(metadata=bounds(2, 65536))
    hidden: tuple[int, ...] = field(default=(512,), metadata=bounds(1, 65536))
    activation: Literal["relu", "elu", "silu", "tanh"] = "relu"
    inputs: Literal["onehot", "embedding"] = "onehot"
    embedding_dim: int = field(default=16, metadata=bounds(1, 4096))
    output_rank: int = field(default=0, metadata=bounds(0, 4096))
    direct: bool = False
    ordering: Literal["natural", "random"] = "natural"
    connectivity: Literal["random", "even"] = "random"
    masks: int = field(default=1, metadata=bounds(1, 64))
    mask_training: Literal["mixture", "sample"] = "mixture"
    dropout: float = field(default=0.0, metadata=bounds(0.0, 0.9))
    seed: int = field(default=0, metadata=bounds(0, 2**63 - 1))
    head: Literal["auto", "categorical", "bernoulli"] = "auto"
    bit_inputs: Literal["signed", "binary"] = "signed"

    def validate(self) -> None:
        check_shape_field(self.shape, max_elements=MAX_POSITIONS)
        self.validate_context()
        if len(self.hidden) > 16:
            raise ConfigError(f"hidden: at most 16 hidden layers, got {len(self.hidden)}")
        if not self.hidden and not self.direct:
            raise ConfigError("hidden: with no hidden layer the model needs direct: true")
        if self.output_rank >= self.levels:
            raise ConfigError(f"output_rank: must be below levels ({self.levels}; 0 means a "
                              f"full output layer), got {self.output_rank}")
        if self.head == "bernoulli" and self.levels != 2:
            raise ConfigError(f"head: bernoulli models two levels, got levels {self.levels}")
        if self.head == "bernoulli" and self.output_rank:
            raise ConfigError("head: bernoulli has one logit per position; use output_rank: 0")
        if self.masks > 1 and self.ordering == "natural" and self.connectivity == "even":
            raise ConfigError("masks: with ordering natural and connectivity even all "
                              f"{self.masks} masks would be the same; use connectivity random")
        params, mask_entries = self.sizes()
        if params > MAX_PARAMETERS:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than "
                              f"{MAX_PARAMETERS:.0e}; use inputs: embedding or an output_rank")
        if mask_entries > MAX_MASK_ENTRIES:
            raise ConfigError(f"config needs about {mask_entries:.3g} mask entries "
                              f"({self.masks} masks), more than {MAX_MASK_ENTRIES:.0e}")

    @property
    def bernoulli(self) -> bool:
        """Whether the head is one Bernoulli logit per position (``head`` resolved)."""
        if self.head == "auto":
            return self.levels == 2 and self.output_rank == 0
        return self.head == "bernoulli"

    @property
    def positions(self) -> int:
        """``D``: the number of modelled positions."""
        return math.prod(self.shape)

    @property
    def input_width(self) -> int:
        """Inputs per position: ``levels`` for one-hot (1, the bit, under a Bernoulli head),
        ``embedding_dim`` for embeddings."""
        if self.inputs == "embedding":
            return self.embedding_dim
        return 1 if self.bernoulli else self.levels

    @property
    def output_width(self) -> int:
        """Outputs per position of the masked layers: ``levels``, ``output_rank``, or 1 (the
        Bernoulli head's logit)."""
        if self.bernoulli:
            return 1
        return self.output_rank or self.levels

    def sizes(self) -> tuple[int, int]:
        """(number of parameters, number of mask entries), computed without allocating.

        The parameters of the dense layout: every weight a mask may cut off is counted, since
        the masks are not drawn yet. With one mask the model holds only the live weights
        (``zoo_made.layers.PackedLinear``), about half; with several every weight is held."""
        d, i, o = self.positions, self.input_width, self.output_width
        widths = [d * i, *self.hidden, d * o] if self.hidden else []
        masked = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
        if self.direct:
            masked += d * i * d * o
        # The per-position output bias sits in the masked output layer only when it is full;
        # a reduced-rank output has its bias after the projection (counted below).
        params = masked + sum(self.hidden) + (0 if self.output_rank else d * o)
        if self.inputs == "embedding":
            params += self.levels * self.embedding_dim
        if self.output_rank:
            params += self.output_rank * self.levels + d * self.levels
        params += context_parameters(self, sum(self.hidden) + d * o)
        return params, masked * self.masks
