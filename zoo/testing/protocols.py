"""The protocols the conformance kit reads, written as ``typing.Protocol`` so that an editor
shows them and a type checker can check a model against them.

The kit does not require a model to declare them: it asks at run time whether a method is
there (``callable(getattr(model, "order", None))``) and checks what it returns. These
classes say what it asks for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from torch import Tensor


@runtime_checkable
class Autoregressive(Protocol):
    """A discrete model that scores position by position, as the causality and completion
    checks read it (``Family.autoregressive`` decides whether they run).

    ``conditional_logits(x)`` returns ``[B, levels, *shape]``: at each position the logits
    of its value given the positions before it in the model's order (sizes of 1 may be
    dropped). An ensemble (``ensemble_size`` > 1) takes the member ``k``:
    ``conditional_logits(x, k)`` and ``order(k)``. ``order()`` is a permutation of the
    flat positions, int64 (default: raster order). ``log_prob`` must equal the sum over
    positions of ``log_softmax(conditional_logits(x), 1)`` at ``x`` (for an ensemble: the
    log-mean-exp over members).
    """

    ensemble_size: int

    def conditional_logits(self, x: Tensor, k: int = 0) -> Tensor:
        """``[B, levels, *shape]``: each position's logits given the positions before it
        in member ``k``'s order."""
        ...

    def order(self, k: int = 0) -> Tensor:
        """Member ``k``'s generation order: a permutation of the flat positions, int64."""
        ...


@runtime_checkable
class Flow(Protocol):
    """A continuous model that is a normalising flow, as the invertibility and log-det
    checks read it: ``forward(x)`` returns ``(z, log|det dz/dx|)`` and ``invert(z)`` maps
    back, both on ``[B, D]``."""

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(z, log|det dz/dx|)`` of data ``x`` ``[B, D]``."""
        ...

    def invert(self, z: Tensor) -> Tensor:
        """The data ``x`` whose ``forward`` gives ``z``."""
        ...
