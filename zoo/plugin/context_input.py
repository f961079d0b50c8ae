"""A context as a model's networks take it, and the checks every conditional model shares.

``check_context`` turns what a caller passes (a label, a class name, a list, an array, a
tensor; one context for every example or one per example) into int64 labels ``[B]`` or
float features ``[B, d]``, or refuses it in one line. ``ContextInput`` is the layer a family
puts at ``model.context_input``: it turns checked contexts into the features ``[B, F]`` its
networks add (a one-hot over the classes, or the standardized vector), and it holds what
conditioning learns from the data rather than by gradient: the class frequencies (for the
exact marginal ``p(x)`` and for drawing a label) and the vector's mean and spread.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.plugin.context import ContextSpec


def check_context(spec: ContextSpec, context: Any, rows: int,
                  device: torch.device | None = None) -> Tensor | None:
    """``context`` checked against ``spec`` for ``rows`` examples: int64 ``[rows]`` (label)
    or float32 ``[rows, d]`` (vector). One context (a label, or a vector ``[d]`` or
    ``[1, d]``) applies to every example. ``None`` passes for a label model (the caller
    takes the marginal); everything else that does not fit is a ``ValueError``."""
    if not spec:
        if context is None:
            return None
        raise ValueError("this model is unconditional: it takes no context (no label, no "
                         "given values)")
    if context is None:
        if spec.kind == "label":
            return None
        raise ValueError(f"this model is conditional on {spec.describe()}: pass a context "
                         f"of {spec.size} values")
    if spec.kind == "label":
        labels = _labels(spec, context)
        return _rows(labels, rows, "labels").to(device or labels.device)
    values = _vector(spec, context)
    return _rows(values, rows, "contexts").to(device or values.device)


def _labels(spec: ContextSpec, context: Any) -> Tensor:
    if isinstance(context, (str, int)) and not isinstance(context, bool):
        return torch.tensor([spec.label_index(context)])
    if isinstance(context, (list, tuple)) and all(isinstance(c, str) for c in context):
        return torch.tensor([spec.label_index(c) for c in context], dtype=torch.long)
    labels = torch.as_tensor(np.asarray(context) if not isinstance(context, Tensor) else context)
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ValueError(f"labels must be integers (the index of a class), got {labels.dtype}")
    labels = labels.reshape(-1).long()
    if torch.compiler.is_compiling():
        return labels  # values: checked where the data was read (see zoo.checks)
    bad = (labels < 0) | (labels >= spec.size)
    if bool(bad.any()):
        spec.label_index(int(labels[bad][0]))  # raises, naming the classes
    return labels


def _vector(spec: ContextSpec, context: Any) -> Tensor:
    values = context if isinstance(context, Tensor) else torch.as_tensor(np.asarray(context))
    if not (values.is_floating_point() or values.dtype in (torch.int32, torch.int64)):
        raise ValueError(f"a context must be real numbers, got {values.dtype}")
    values = values.float()
    if values.dim() == 1:
        values = values.unsqueeze(0)
    if values.dim() != 2 or values.shape[1] != spec.size:
        width = values.shape[-1] if values.dim() else 1
        raise ValueError(f"the context has {width} values per example; this model takes "
                         f"{spec.size} ({', '.join(spec.names[:10])})")
    if not torch.compiler.is_compiling() and not bool(torch.isfinite(values).all()):
        raise ValueError("the context contains NaN or infinite values")
    return values


def _rows(values: Tensor, rows: int, what: str) -> Tensor:
    if len(values) == rows:
        return values
    if len(values) == 1:
        return values.expand(rows, *values.shape[1:])
    raise ValueError(f"{len(values)} {what} for {rows} examples: give one, or one per example")


class ContextInput(nn.Module):
    """The context as features ``[B, F]`` for a family's networks, and its data statistics.

    Labels become a one-hot over the ``K`` classes (a network's linear layer on it is a
    learned vector per class, the bias of van den Oord et al. 2016b); vectors are
    standardized with the training contexts' mean and spread. ``log_prior`` (labels) and
    ``shift``/``log_scale`` (vectors) are frozen parameters, not buffers: state learned
    from the data, which the loader cannot rebuild from the config, set by ``fit``.
    """

    def __init__(self, spec: ContextSpec):
        super().__init__()
        if not spec:
            raise ValueError("ContextInput needs a label or vector context")
        self.spec = spec
        if spec.kind == "label":
            self.log_prior = nn.Parameter(torch.full((spec.size,), -math.log(spec.size)),
                                          requires_grad=False)
        else:
            self.shift = nn.Parameter(torch.zeros(spec.size), requires_grad=False)
            self.log_scale = nn.Parameter(torch.zeros(spec.size), requires_grad=False)

    @property
    def features(self) -> int:
        """The width ``F`` of ``forward``'s output: classes or context features."""
        return self.spec.size

    def forward(self, context: Tensor) -> Tensor:
        """Checked contexts (int64 ``[B]`` or float ``[B, d]``) as float features ``[B, F]``."""
        if self.spec.kind == "label":
            return F.one_hot(context, self.spec.size).to(self.log_prior.dtype)
        return (context.to(self.shift.dtype) - self.shift) * torch.exp(-self.log_scale)

    @torch.no_grad()
    def fit(self, contexts: Iterable[Tensor]) -> None:
        """Set the statistics from the training contexts (batches, read once): the class
        frequencies, or the mean and standard deviation of each feature. A class absent
        from the data keeps a small share (half an example) so that its label stays usable."""
        if self.spec.kind == "label":
            counts = torch.zeros(self.spec.size, dtype=torch.float64)
            for batch in contexts:
                counts += torch.bincount(batch.reshape(-1).cpu(), minlength=self.spec.size)
            if counts.sum() > 0:
                counts = counts.clamp_min(0.5)
                self.log_prior.copy_(torch.log(counts / counts.sum()).to(self.log_prior))
            return
        count, total = 0, torch.zeros(self.spec.size, dtype=torch.float64)
        squares = torch.zeros_like(total)
        for batch in contexts:
            batch = batch.double().cpu().reshape(len(batch), -1)
            count += len(batch)
            total += batch.sum(0)
            squares += batch.square().sum(0)
        if count:
            mean = total / count
            var = (squares / count - mean.square()).clamp_min(0)
            std = torch.where(var > 0, var.sqrt(), torch.ones_like(var))
            self.shift.copy_(mean.to(self.shift))
            self.log_scale.copy_(torch.log(std).to(self.log_scale))

    def extra_repr(self) -> str:
        return self.spec.describe()
