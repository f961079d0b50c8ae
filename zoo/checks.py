"""The input checks every family shares: a batch of continuous or discrete data, a sample
count and temperature, and the known values of a completion.

They refuse bad input with a ``ValueError`` that says what was expected, before a model
computes anything, so a NaN or an out-of-range level never becomes a silent wrong number.
They know no model, which is why both the models (``zoo.plugin``) and the inference that
drives them (``zoo.infer``) can use them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

FLOAT32_MAX = torch.finfo(torch.float32).max

# Inside a ``torch.compile``-d graph the value checks below (finite, in range) are skipped:
# each is a data-dependent branch, which splits the graph in two (on realnvp's benchmark it
# cost a tenth of the step). The one compiled caller is the trainer, whose data were
# checked when loaded (``zoo.data.checks``) and which checks every step's loss. Types and
# shapes are still checked: they are known while tracing and cost nothing.


def check_continuous(x: Any, dim: int) -> Tensor:
    """Validate a batch of continuous data: a finite floating tensor of shape ``[B, dim]``."""
    if not isinstance(x, Tensor):
        raise ValueError(f"expected a torch.Tensor of shape [B, {dim}], got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"expected a floating-point tensor of shape [B, {dim}], got {x.dtype}")
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"expected shape [B, {dim}], got {list(x.shape)}")
    if torch.compiler.is_compiling():
        return x  # values: see the note above
    if not torch.isfinite(x).all():
        raise ValueError("input contains NaN or infinite values")
    if x.dtype.itemsize > 4 and bool((x.abs() > FLOAT32_MAX).any()):
        # Models compute in float32: such a value would become inf there, then NaN.
        raise ValueError(f"input values must lie within the float32 range (|x| <= {FLOAT32_MAX:.4g})")
    return x


def check_discrete(x: Any, shape: tuple[int, ...], levels: int) -> Tensor:
    """Validate a batch of discrete data: an integer tensor ``[B, *shape]`` in ``0..levels-1``."""
    # This runs on every training step: the messages are built only when they are raised.
    if not isinstance(x, Tensor):
        raise ValueError(f"expected an integer torch.Tensor of shape {_batch_of(shape)}, "
                         f"got {type(x).__name__}")
    if x.dtype is not torch.int64 and (x.is_floating_point() or x.is_complex()
                                       or x.dtype == torch.bool):
        raise ValueError(f"expected integer values in 0..{levels - 1} (dtype int64) of shape "
                         f"{_batch_of(shape)}, got {x.dtype}")
    if x.dim() != len(shape) + 1 or x.shape[1:] != tuple(shape):
        hint = ""
        if len(shape) == 3 and shape[0] == 1 and tuple(x.shape[1:]) == tuple(shape[1:]):
            # Models take one-channel images with their channel axis, always; only the data
            # readers (zoo.score, zoo train --data) add it to files stored without one.
            hint = ": models keep the channel axis of one-channel images (x.unsqueeze(1))"
        raise ValueError(f"expected shape {_batch_of(shape)}, got {list(x.shape)}{hint}")
    if x.numel() and not torch.compiler.is_compiling():  # see the note above check_continuous
        # One pass and one read-back for both ends.
        low, high = torch.aminmax(x)
        low, high = int(low), int(high)
        if low < 0 or high >= levels:
            raise ValueError(f"values must lie in 0..{levels - 1}, got range {low}..{high}")
    return x.long()


def _batch_of(shape: tuple[int, ...]) -> str:
    return "[B, " + ", ".join(str(s) for s in shape) + "]"


def check_sampling(n: Any, temperature: Any) -> None:
    """Refuse a sample count that is not a positive integer and a non-positive temperature."""
    if isinstance(n, bool) or not isinstance(n, int) or n <= 0:
        raise ValueError(f"number of samples must be a positive integer, got {n!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)):
        raise ValueError(f"temperature must be a number, got {temperature!r}")
    if not temperature > 0 or temperature == float("inf"):
        raise ValueError(f"temperature must be positive and finite, got {temperature!r}")


def check_completion(
    given: Tensor | None, mask: Tensor | None, n: int, shape: tuple[int, ...], levels: int
) -> tuple[Tensor, Tensor] | None:
    """Validate ``given``/``mask`` for completion sampling; returns them broadcast to ``[n, *shape]``."""
    if given is None and mask is None:
        return None
    if given is None or mask is None:
        raise ValueError("completion needs both `given` (values) and `mask` (which are known)")
    full = (n, *shape)
    if given.dim() == len(shape):
        given = given.unsqueeze(0)
    if mask.dim() == len(shape):
        mask = mask.unsqueeze(0)
    try:
        given = given.expand(full)
        mask = mask.expand(full)
    except RuntimeError:
        raise ValueError(
            f"`given` and `mask` must have shape {list(shape)} or [{n}, ...], "
            f"got {list(given.shape)} and {list(mask.shape)}"
        ) from None
    if mask.dtype != torch.bool:
        raise ValueError(f"`mask` must be a bool tensor, got {mask.dtype}")
    known = given[mask]
    if given.is_floating_point() or (known.numel() and (known.min() < 0 or known.max() >= levels)):
        raise ValueError(f"known values in `given` must be integers in 0..{levels - 1}")
    return given.long(), mask
