"""The base class of every zoo model, and the input checks all families share.

A ``ZooModel`` is an ``nn.Module`` that knows its family and config and scores and samples
data directly: ``model.log_prob(x)`` and ``model.sample(n, ...)``. Everything the model needs
(masks, permutations) is a registered buffer, so its ``state_dict`` is the whole model.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import Tensor, nn

FLOAT32_MAX = torch.finfo(torch.float32).max


class ZooModel(nn.Module):
    """A model of a zoo family. Subclasses implement ``log_prob`` and ``sample``."""

    family: str = ""
    config: Any = None
    #: True when ``log_likelihood`` of the model's data is a lower bound on ``log p``, not
    #: exact: a continuous density fitted to discrete data through dequantization.
    likelihood_bound: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "log_prob" in cls.__dict__ and not getattr(cls.log_prob, "_zoo_no_silent_nan", False):
            cls.log_prob = _no_silent_nan(cls.__dict__["log_prob"])
        if "sample" in cls.__dict__ and not getattr(cls.sample, "_zoo_finite", False):
            cls.sample = _finite_samples(cls.__dict__["sample"])

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-probability of each example, in nats: float tensor of shape ``[B]``."""
        raise NotImplementedError

    def log_likelihood(self, x: Tensor, *, samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor:
        """The log-likelihood of data of the model's dataset, in nats, ``[B]``: what the
        trainer maximises and evaluation reports.

        For most models it is ``log_prob(x)``, exact. A continuous model of discrete data
        (``likelihood_bound``) returns a lower bound instead: the log-density at ``x + u``
        for ``u ~ U[0, 1)``, or the importance-weighted bound over ``samples`` such draws,
        drawn on ``generator``.
        """
        return self.log_prob(x)

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: Tensor | None = None,
        mask: Tensor | None = None,
    ) -> Tensor:
        """Draw ``n`` samples.

        ``temperature`` scales the spread (1 is the model itself); ``generator`` makes the
        draw reproducible. Autoregressive families also complete partly known inputs: where
        ``mask`` is true, the sample keeps the value of ``given``.
        """
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter (or buffer); CPU for an empty model."""
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


def _finite_samples(sample: Any) -> Any:
    """Wrap a family's ``sample`` so that samples that are not finite numbers (a temperature
    so high that they overflow) are a ValueError, not NaN or inf handed to the caller."""

    @functools.wraps(sample)
    def checked(self: ZooModel, n: int, *args: Any, **kwargs: Any) -> Tensor:
        out = sample(self, n, *args, **kwargs)
        if isinstance(out, Tensor) and out.is_floating_point() and not bool(
                torch.isfinite(out).all()):
            temperature = kwargs.get("temperature", 1.0)
            raise ValueError(f"temperature {temperature:g} gives samples that are not finite "
                             "numbers (they overflow); use a smaller temperature")
        return out

    checked._zoo_finite = True  # type: ignore[attr-defined]
    return checked


def _no_silent_nan(log_prob: Any) -> Any:
    """Wrap a family's ``log_prob`` so that, outside training, a NaN result is a ValueError.

    Input checks catch NaN, inf and values outside the data's range; this catches inputs
    that pass them but overflow inside the model (a coordinate of 3e38 in a flow). A training
    step (train mode with autograd on) skips it: the trainer checks the loss itself.
    """

    @functools.wraps(log_prob)
    def checked(self: ZooModel, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = log_prob(self, x, *args, **kwargs)
        training = self.training and torch.is_grad_enabled()
        if not training and isinstance(out, Tensor) and out.is_floating_point():
            bad = int(torch.isnan(out).sum())
            if bad:
                largest = float(x.abs().max()) if isinstance(x, Tensor) and x.numel() else 0.0
                raise ValueError(
                    f"log_prob is NaN for {bad} of {out.numel()} examples: the input is outside "
                    f"what this model can score (largest |value| {largest:.3g})"
                )
        return out

    checked._zoo_no_silent_nan = True  # type: ignore[attr-defined]
    return checked


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
    want = "[B, " + ", ".join(str(s) for s in shape) + "]"
    if not isinstance(x, Tensor):
        raise ValueError(f"expected an integer torch.Tensor of shape {want}, got {type(x).__name__}")
    if x.is_floating_point() or x.is_complex() or x.dtype == torch.bool:
        raise ValueError(
            f"expected integer values in 0..{levels - 1} (dtype int64) of shape {want}, got {x.dtype}"
        )
    if tuple(x.shape[1:]) != tuple(shape) or x.dim() != len(shape) + 1:
        raise ValueError(f"expected shape {want}, got {list(x.shape)}")
    if x.numel() and not torch.compiler.is_compiling():  # see the note above check_continuous
        # One pass and one read-back for both ends: this runs on every training step.
        low, high = (int(v) for v in torch.aminmax(x))
        if low < 0 or high >= levels:
            raise ValueError(f"values must lie in 0..{levels - 1}, got range {low}..{high}")
    return x.long()


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
