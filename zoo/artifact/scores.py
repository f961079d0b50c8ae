"""The distribution of a model's log-likelihoods, as an artifact records it (``log_prob``).

Every artifact zoo trains records, in ``config.json``, the quantiles of ``log p(x)`` (nats)
over its training examples and over examples held out of training (the test split of a
catalog dataset; the validation split of the user's own data): a fixed set of ``LEVELS``
percentiles per split, dense in the tails where unusual examples fall, and how many
examples they were taken from::

    "log_prob": {"levels": [0, 0.1, 0.5, 1, ...], "train": {"n": 5000, "quantiles": [...]},
                 "test": {"n": 10000, "quantiles": [...]}}

``zoo score`` turns a score into its percentile against the training distribution (the
fraction of training examples that score lower, interpolated between the quantiles), marks
the 1st percentile, and draws the recorded distribution beside the scored data.
Artifacts written before it existed have no ``log_prob`` and load as before.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zoo.errors import ConfigError

if TYPE_CHECKING:
    from torch import Tensor

#: The percentiles recorded for each split.
LEVELS = (0.0, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0,
          90.0, 95.0, 98.0, 99.0, 99.5, 99.9, 100.0)
#: The splits a distribution may be recorded for, and what each one holds.
SPLITS = {"train": "training examples", "val": "validation examples (held out of training)",
          "test": "test examples"}
#: How many examples of a split the quantiles are taken from, at most.
MAX_EXAMPLES = 5_000
DIGITS = 7  # significant digits kept: the JSON stays short, the percentiles unchanged


def record(log_probs: Mapping[str, Tensor]) -> dict[str, Any]:
    """The ``log_prob`` entry of ``config.json`` for per-example ``log p`` of each split
    (splits with no finite score are left out; an empty mapping when none is left)."""
    import torch

    out: dict[str, Any] = {}
    for split, values in log_probs.items():
        if split not in SPLITS:
            raise ValueError(f"log_prob: unknown split {split!r} (one of {', '.join(SPLITS)})")
        finite = values.detach().double().cpu()
        finite = finite[torch.isfinite(finite)]
        if not len(finite):
            continue
        q = torch.quantile(finite, torch.tensor(LEVELS, dtype=torch.float64) / 100)
        out[split] = {"n": len(finite), "quantiles": [float(f"{v:.{DIGITS}g}") for v in q.tolist()]}
    return {"levels": list(LEVELS), **out} if out else {}


def scored_sample(model: Any, examples: Any, *, seed: int, batch_size: int) -> Tensor:
    """``log p`` of up to ``MAX_EXAMPLES`` of ``examples`` (all of them when there are
    fewer), drawn with ``seed``: what ``record`` is given for a split."""
    import torch

    from zoo.data.source import PERMUTED_SPLIT_ROWS, distinct_rows
    from zoo.infer.evaluation import nll_per_example

    generator = torch.Generator().manual_seed(seed)
    if len(examples) > PERMUTED_SPLIT_ROWS:  # no permutation of millions of rows
        examples = examples.subset(distinct_rows(len(examples), MAX_EXAMPLES, generator))
    elif len(examples) > MAX_EXAMPLES:
        pick = torch.randperm(len(examples), generator=generator)[:MAX_EXAMPLES].sort().values
        examples = examples.subset(pick)
    # Data drawn anew every epoch (binarized MNIST's probabilities) is drawn once here.
    return -nll_per_example(model, examples.drawn(generator), batch_size)


def check(value: Mapping[str, Any]) -> None:
    """Refuse a ``log_prob`` entry zoo would not write: a ``config.json`` may come from the
    Hub, and a score's percentile must never be computed from nonsense."""
    if not value:
        return
    levels = value.get("levels")
    if not _numbers(levels) or len(levels) < 2 or list(levels) != sorted(set(levels)) \
            or levels[0] < 0 or levels[-1] > 100:
        raise ConfigError("log_prob.levels: expected increasing percentiles between 0 and 100")
    for split, entry in value.items():
        if split == "levels":
            continue
        where = f"log_prob.{split}"
        if split not in SPLITS:
            raise ConfigError(f"log_prob: unknown key {split!r} (levels, {', '.join(SPLITS)})")
        if not isinstance(entry, Mapping) or set(entry) != {"n", "quantiles"}:
            raise ConfigError(f"{where}: expected {{n, quantiles}}")
        n, quantiles = entry["n"], entry["quantiles"]
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ConfigError(f"{where}.n: expected a positive integer, got {n!r}")
        if not _numbers(quantiles) or len(quantiles) != len(levels) \
                or any(b < a for a, b in zip(quantiles, quantiles[1:])):
            raise ConfigError(f"{where}.quantiles: expected {len(levels)} finite numbers in "
                              "increasing order, one per level")


def _numbers(values: Any) -> bool:
    return isinstance(values, list) and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        for v in values)


def percentile(value: Mapping[str, Any], split: str, score: float) -> float:
    """The percentage of ``split``'s examples that score below ``score``: the recorded
    quantiles, linearly interpolated (0 below the lowest, 100 above the highest)."""
    levels, quantiles = value["levels"], value[split]["quantiles"]
    if score != score:  # NaN
        return math.nan
    if score < quantiles[0]:
        return 0.0
    if score >= quantiles[-1]:
        return 100.0
    # The last quantile not above the score; tied quantiles (a discrete model's equal
    # scores) give the highest level they share.
    i = bisect.bisect_right(quantiles, score) - 1
    lo, hi = quantiles[i], quantiles[i + 1]
    return levels[i] + (levels[i + 1] - levels[i]) * (score - lo) / (hi - lo)


def percentiles(value: Mapping[str, Any], split: str, scores: Sequence[float]) -> list[float]:
    return [percentile(value, split, float(s)) for s in scores]


def quantile(value: Mapping[str, Any], split: str, level: float) -> float | None:
    """The recorded ``level`` percentile of ``split`` (None when it was not recorded)."""
    entry = value.get(split) if value else None
    if entry is None or level not in value["levels"]:
        return None
    return float(entry["quantiles"][value["levels"].index(level)])


def fractions(value: Mapping[str, Any], split: str, edges: Sequence[float]) -> list[float]:
    """The fraction of ``split``'s examples in each bin between consecutive ``edges``
    (what a histogram of the recorded distribution shows)."""
    cdf = [percentile(value, split, e) / 100 for e in edges]
    return [b - a for a, b in zip(cdf, cdf[1:])]
