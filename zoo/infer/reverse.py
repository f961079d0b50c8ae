"""The reverse check: does a model put mass where the data is not?

The test NLL (the forward direction, ``E_data[-log q]``) barely notices a model that sends
1% of its samples far from the data: it costs that 1% of the mass, about 0.01 nats. The
reverse direction scores the model's own samples instead:

- where the data's true density ``p`` is known (moons: ``zoo.data.moons``), by
  ``E_model[-log p]``, whose floor is the data's entropy; a sample off the data costs what
  ``p`` says it should (hundreds of nats at the spline box's edge on moons);
- where it is not (images), by the model's NLL of its own samples, ``E_model[-log q]``, its
  entropy: against the test NLL, a gap that grows means mass spread where the data is not.

``reverse_check`` gives both directions and their gap; ``ReverseCheck.passes(tolerance)``
is the verdict a test asserts; ``check_dataset`` scores a model on a registered dataset's
test split, with the truth where ``TRUTH`` knows it. ``python -m benchmarks.bench_reverse``
runs it on the catalog's flows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from zoo.data.moons import MOONS_ENTROPY, moons_log_density
from zoo.infer.evaluation import in_batches, nll_per_example

#: Datasets whose true log-density is known: the function and the data's entropy.
TRUTH: dict[str, tuple[Callable[[Tensor], Tensor], float]] = {
    "moons": (moons_log_density, MOONS_ENTROPY)}

#: A sample this many nats below the data's typical log-density (the floor) counts as off
#: the data in ``ReverseCheck.off_data``.
OFF_DATA_NATS = 5.0


@dataclass(frozen=True)
class ReverseCheck:
    """Both directions in nats per example, and their gap.

    ``forward``: the test NLL. ``reverse``: the mean of ``-log p_true`` over ``n`` samples
    (``reference == "truth"``), or the model's own NLL of its samples (``"self"``).
    ``floor``: the data's entropy where known (the least either direction can be).
    ``off_data``: with the truth, the share of samples more than ``OFF_DATA_NATS`` below
    the floor; ``worst``: the largest ``-log p`` among the samples.
    """

    forward: float
    reverse: float
    reference: str
    n: int
    floor: float | None = None
    off_data: float | None = None
    worst: float | None = None

    @property
    def gap(self) -> float:
        """``reverse - forward``: about 0 for a model that matches the data; it grows with
        the mass the model puts where the data is not."""
        return self.reverse - self.forward

    def passes(self, tolerance: float) -> bool:
        """The gap is at most ``tolerance`` nats per example."""
        return self.gap <= tolerance

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"gap": self.gap}


@torch.no_grad()
def reverse_check(model: Any, test: Any, *, truth: Callable[[Tensor], Tensor] | None = None,
                  floor: float | None = None, n: int = 20_000, seed: int = 0,
                  batch_size: int = 4096) -> ReverseCheck:
    """Score ``model`` both ways: its NLL of ``test`` (a tensor or ``Examples``) and ``n``
    of its samples (drawn in batches from a generator seeded with ``seed``) scored by
    ``truth`` (the data's log-density, e.g. ``zoo.data.moons.moons_log_density``) or, without
    one, by the model itself."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive integer, got {n!r}")
    forward = nll_per_example(model, test, batch_size).mean().item()
    generator = torch.Generator(device=model.device).manual_seed(seed)
    samples = torch.cat([model.sample(min(batch_size, n - i), generator=generator)
                         for i in range(0, n, batch_size)])
    if truth is None:
        return ReverseCheck(forward=forward, reverse=nll_per_example(model, samples,
                            batch_size).mean().item(), reference="self", n=n, floor=floor)
    scores = torch.cat([-truth(batch.cpu()).double() for batch in in_batches(samples,
                                                                             batch_size)])
    off = None if floor is None else (scores > floor + OFF_DATA_NATS).double().mean().item()
    return ReverseCheck(forward=forward, reverse=scores.mean().item(), reference="truth", n=n,
                        floor=floor, off_data=off, worst=scores.max().item())


def check_dataset(model: Any, dataset: Any, *, n: int = 20_000, seed: int = 0,
                  batch_size: int = 4096) -> ReverseCheck:
    """``reverse_check`` of ``model`` on a registered dataset's (a ``zoo.data.Dataset``)
    test split, against its true density where ``TRUTH`` has it, else against the model."""
    truth, floor = TRUTH.get(dataset.name, (None, None))
    return reverse_check(model, dataset.examples("test"), truth=truth, floor=floor, n=n,
                         seed=seed, batch_size=batch_size)
