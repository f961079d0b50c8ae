"""Scoring a model on a split: test NLL in nats per example, its standard error, bits/dim."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

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


@torch.no_grad()
def nll_per_example(model: ZooModel, x: Tensor, batch_size: int = 4096) -> Tensor:
    """``-log p(x)`` for every example, in nats (float64 on the CPU)."""
    was_training = model.training
    model.eval()
    device = model.device
    out = [-model.log_prob(x[i : i + batch_size].to(device)).double().cpu()
           for i in range(0, len(x), batch_size)]
    model.train(was_training)
    return torch.cat(out)


def mean_nll(model: ZooModel, x: Tensor, batch_size: int = 4096) -> float:
    return nll_per_example(model, x, batch_size).mean().item()


def evaluate(model: ZooModel, x: Tensor, batch_size: int = 4096) -> Evaluation:
    """Test NLL (nats per example) with its standard error and bits per dimension."""
    nll = nll_per_example(model, x, batch_size)
    n = len(nll)
    dims = math.prod(x.shape[1:])
    mean = nll.mean().item()
    stderr = (nll.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    return Evaluation(nll=mean, stderr=stderr, bits_per_dim=mean / (dims * math.log(2)),
                      n=n, dims=dims)
