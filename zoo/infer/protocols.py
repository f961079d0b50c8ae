"""What inference needs of a model, written as ``typing.Protocol``s.

Evaluation and completion work on any module that has these methods, a ``ZooModel`` or not;
declaring that here (rather than importing ``ZooModel``) keeps inference below the plugin
room, so that the plugin room's autoregressive base class can route completion here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import torch
    from torch import Tensor


class ScoredModel(Protocol):
    """A model that scores examples: what ``zoo.infer.evaluation`` calls."""

    training: bool

    def log_prob(self, x: Tensor) -> Tensor: ...

    def log_likelihood(self, x: Tensor, *, samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor: ...

    def train(self, mode: bool = True) -> Any: ...

    def eval(self) -> Any: ...


class DiscreteModel(ScoredModel, Protocol):
    """A model of discrete data (``config.shape``, ``config.levels``) that samples: what
    ``zoo.infer.completion`` and its chains call. An autoregressive model may also declare
    its order (``order(k)``, ``ensemble_size``) and ``conditional_logits`` (see
    ``zoo.testing``'s autoregressive protocol)."""

    config: Any

    def sample(self, n: int, *, temperature: float = 1.0,
               generator: torch.Generator | None = None, given: Tensor | None = None,
               mask: Tensor | None = None) -> Tensor: ...
