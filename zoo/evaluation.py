"""Scoring a model on a split: test NLL in nats per example, its standard error, bits/dim."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.model import ZooModel


@dataclass(frozen=True)
class Evaluation:
    """Mean negative log-likelihood over ``n`` examples, in nats, with its standard error."""

    nll: float
    stderr: float
    bits_per_dim: float
    n: int
    dims: int

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def in_batches(x: Any, batch_size: int) -> Iterator[Tensor]:
    """Consecutive batches of a tensor, or of ``zoo.data`` ``Examples`` (read as they go)."""
    if isinstance(x, Tensor):
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size]
    else:
        for _, batch in x.batches(batch_size):
            yield batch


@torch.no_grad()
def nll_per_example(model: ZooModel, x: Any, batch_size: int = 4096) -> Tensor:
    """``-log p(x)`` for every example, in nats (float64 on the CPU).

    ``x`` is a tensor or ``Examples`` (data read from its storage one batch at a time)."""
    was_training = model.training
    model.eval()
    device = model.device
    out = [-model.log_prob(batch.to(device)).double().cpu() for batch in in_batches(x, batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def mean_nll(model: ZooModel, x: Any, batch_size: int = 4096) -> float:
    return nll_per_example(model, x, batch_size).mean().item()


def evaluate(model: ZooModel, x: Any, batch_size: int = 4096) -> Evaluation:
    """Test NLL (nats per example) with its standard error and bits per dimension."""
    nll = nll_per_example(model, x, batch_size)
    return summarize(nll, math.prod(x.shape[1:]) if isinstance(x, Tensor) else math.prod(x.shape))


def summarize(nll: Tensor, dims: int) -> Evaluation:
    """Mean, standard error and bits/dim of per-example NLLs over ``dims`` dimensions."""
    n = len(nll)
    mean = nll.mean().item()
    stderr = (nll.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    return Evaluation(nll=mean, stderr=stderr, bits_per_dim=mean / (dims * math.log(2)),
                      n=n, dims=dims)
