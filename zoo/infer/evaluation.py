"""Scoring a model on a split: test NLL in nats per example, its standard error, bits/dim.

Most models score exactly (``log_prob``). A continuous model of discrete data
(``model.likelihood_bound``) scores through ``log_likelihood``, a dequantization bound: its
NLL is an upper bound, marked ``bound`` here, and ``samples`` > 1 importance-weighted draws
per example tighten it. The dequantization noise comes from a generator seeded with
``NOISE_SEED`` and advanced batch by batch, so the same model, data and batch size give the
same number.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.infer.protocols import ScoredModel

# Any fixed seed; not 0, the seed tests and users most often draw their data with (the
# noise must not repeat the stream that made the data).
NOISE_SEED = 16_2017


@dataclass(frozen=True)
class Evaluation:
    """Mean negative log-likelihood over ``n`` examples, in nats, with its standard error.

    ``bound``: the NLL is an upper bound (dequantization), computed with ``samples``
    importance-weighted draws per example; otherwise it is exact.
    """

    nll: float
    stderr: float
    bits_per_dim: float
    n: int
    dims: int
    bound: bool = False
    samples: int = 1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def in_batches(x: Any, batch_size: int) -> Iterator[Tensor]:
    """Consecutive batches of a tensor, or of ``zoo.data`` ``Examples`` (read as they go)."""
    for batch, _ in with_contexts(x, batch_size):
        yield batch


def with_contexts(x: Any, batch_size: int) -> Iterator[tuple[Tensor, Tensor | None]]:
    """``(batch, contexts)``: the contexts the data carries (``Examples`` with labels or
    given columns), else None."""
    if isinstance(x, Tensor):
        for i in range(0, len(x), batch_size):
            yield x[i : i + batch_size], None
    else:
        for _, batch, contexts in x.pairs(batch_size):
            yield batch, contexts


def context_argument(contexts: Tensor | None, device: torch.device) -> dict[str, Tensor]:
    """``{"context": ...}`` on ``device`` when there are contexts, else nothing: an
    unconditional model is never handed the argument."""
    return {} if contexts is None else {"context": contexts.to(device)}


@torch.no_grad()
def nll_per_example(model: ScoredModel, x: Any, batch_size: int = 4096, *,
                    samples: int = 1) -> Tensor:
    """``-log p(x)`` for every example, in nats (float64 on the CPU); an upper bound with
    ``samples`` dequantization draws for a ``likelihood_bound`` model.

    ``x`` is a tensor or ``Examples`` (data read from its storage one batch at a time)."""
    was_training = model.training
    model.eval()
    device = model.device
    generator = torch.Generator().manual_seed(NOISE_SEED)
    try:
        conditional = bool(getattr(model, "context_spec", None))
        out = [-model.log_likelihood(batch.to(device), samples=samples, generator=generator,
                                     **context_argument(contexts if conditional else None,
                                                        device)).double().cpu()
               for batch, contexts in with_contexts(x, batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.float64)


def mean_nll(model: ScoredModel, x: Any, batch_size: int = 4096) -> float:
    return nll_per_example(model, x, batch_size).mean().item()


def evaluate_on(model: ScoredModel, x: Any, batch_size: int = 4096, *,
             samples: int = 1) -> Evaluation:
    """Test NLL (nats per example) with its standard error and bits per dimension."""
    bound = bool(getattr(model, "likelihood_bound", False))
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if samples > 1 and not bound:
        raise ValueError("importance samples apply to dequantized models; this model's "
                         "log-likelihood is exact")
    nll = nll_per_example(model, x, batch_size, samples=samples)
    dims = math.prod(x.shape[1:]) if isinstance(x, Tensor) else math.prod(x.shape)
    return summarize(nll, dims, bound=bound, samples=samples)


def summarize(nll: Tensor, dims: int, *, bound: bool = False, samples: int = 1) -> Evaluation:
    """Mean, standard error and bits/dim of per-example NLLs over ``dims`` dimensions."""
    n = len(nll)
    mean = nll.mean().item()
    stderr = (nll.std(unbiased=True).item() / math.sqrt(n)) if n > 1 else float("nan")
    return Evaluation(nll=mean, stderr=stderr, bits_per_dim=mean / (dims * math.log(2)),
                      n=n, dims=dims, bound=bound, samples=samples)
