"""Completion (``zoo.infer.completion``): how close the Gibbs chain gets, and how long it takes.

Two numbers (issue 13):

- ``tv_vs_sweeps``: on tiny models (2x2 images, 3 levels, weights scaled by 3 so that the
  known part matters), the *exact* total variation between the chain's distribution after
  S sweeps and the exact conditional: the start distribution and every kernel (independence
  Metropolis-Hastings, Gibbs updates) are enumerated, so there is no sampling noise. Known
  values: those whose conditional differs
  most from the unknown part's marginal.
- ``seconds``: 16 completions of ``pixelcnn-digits`` and ``made-digits`` (pulled into
  ``$ZOO_HOME`` first: ``zoo pull NAME``) with the bottom half of a test digit known, at
  the default number of sweeps, and with the top half known (the ancestral fast path):
  wall-clock ``seconds`` and the process's ``cpu_seconds`` (the honest number on a busy
  machine).

    python benchmarks/bench_completion.py            # both; prints JSON
    python benchmarks/bench_completion.py --no-timing
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import platform
import time
from typing import Any

import torch

import zoo
from zoo.infer.completion import DEFAULT_SWEEPS, complete, declared_orders

TINY = {
    "made-random-order": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16],
                                   "ordering": "random", "seed": 1}),
    "made-ensemble": ("made", {"shape": [1, 2, 2], "levels": 3, "hidden": [16],
                               "ordering": "random", "masks": 3}),
    "pixelcnn-gated": ("pixelcnn", {"shape": [1, 2, 2], "levels": 3, "variant": "gated",
                                    "channels": 8, "layers": 1, "first_kernel": 3,
                                    "head_channels": 8}),
}
SWEEPS = [0, 1, 2, 4, 8, 16, 24, 32]


@torch.no_grad()
def exact_gibbs_tv(model, given: torch.Tensor, mask: torch.Tensor,
                   sweeps: list[int]) -> list[float]:
    """TV between the law of ``complete``'s Gibbs chain after each of ``sweeps`` sweeps and
    the exact conditional, by enumerating every completion of ``given`` (small models)."""
    shape, levels = tuple(model.config.shape), model.config.levels
    known = mask.reshape(-1)
    free = (~known).nonzero().squeeze(1).tolist()
    count = levels ** len(free)
    digits = torch.arange(count)[:, None] // levels ** torch.arange(len(free) - 1, -1, -1)
    states = given.reshape(-1).expand(count, -1).clone()
    states[:, free] = digits % levels
    lp = model.log_prob(states.reshape(-1, *shape)).double()
    target = torch.softmax(lp, 0)
    # neighbours[d][s, c]: state s with free position d set to c.
    place = {f: levels ** (len(free) - 1 - i) for i, f in enumerate(free)}
    neighbours = {}
    for d in free:
        base = torch.arange(count) - (states[:, d] * place[d])
        neighbours[d] = base[:, None] + torch.arange(levels)[None, :] * place[d]
    start = _start(model, states, known, free, levels, shape)
    law = start if start is not None else torch.full((count,), 1.0 / count, dtype=torch.float64)
    metropolis = None
    if start is not None:  # independence MH with proposal q = start: q(y) min(1, w(y) / w(x))
        log_w = lp - start.log()
        metropolis = start[None, :] * torch.exp(log_w[None, :] - log_w[:, None]).clamp(max=1)
        metropolis.fill_diagonal_(0)
        metropolis += torch.diag(1 - metropolis.sum(1))
    out, done = [], 0
    for target_sweeps in sweeps:
        while done < target_sweeps:
            if metropolis is not None and done > 0:
                law = law @ metropolis
            for d in (free if done % 2 == 0 else free[::-1]):
                step = torch.softmax(lp[neighbours[d]], 1)  # [s, c]
                law = torch.zeros(count, dtype=torch.float64).index_add_(
                    0, neighbours[d].flatten(), (law[:, None] * step).flatten())
            done += 1
        out.append(0.5 * float((law - target).abs().sum()))
    return out


def _start(model, states, known, free, levels, shape) -> torch.Tensor | None:
    """The proposal's law (clamp-and-draw in member 0's order); None without conditionals."""
    orders = declared_orders(model)
    logits_of = getattr(model, "conditional_logits", None)
    if orders is None or not callable(logits_of):
        return None
    images = states.reshape(-1, *shape)
    logits = logits_of(images, 0) if len(orders) > 1 else logits_of(images)
    logp = torch.log_softmax(logits.double().reshape(len(states), levels, -1), 1)
    picked = logp.gather(1, states[:, None, :]).squeeze(1)  # [s, D]
    return picked[:, free].sum(1).exp()


def tiny_model(family: str, config: dict, scale: float = 3.0):
    torch.manual_seed(0)
    model = zoo.get_family(family).build(config)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model.eval()


def hardest_given(model, mask: torch.Tensor) -> torch.Tensor:
    """The known values whose conditional differs most from the unknown part's marginal."""
    shape, levels = tuple(model.config.shape), model.config.levels
    x = torch.tensor(list(itertools.product(range(levels), repeat=math.prod(shape))))
    with torch.no_grad():
        probs = torch.softmax(model.log_prob(x.reshape(-1, *shape)).double(), 0)
    known = mask.reshape(-1)
    groups: dict[tuple, list[int]] = {}
    for i, row in enumerate(x[:, known].tolist()):
        groups.setdefault(tuple(row), []).append(i)
    marginal = sum(probs[g] for g in groups.values())

    def tv(rows):
        return 0.5 * float((probs[rows] / probs[rows].sum() - marginal).abs().sum())
    best = max(groups.values(), key=tv)
    return x[best[0]].reshape(shape)


def tv_table() -> list[dict[str, Any]]:
    from zoo.cli.sample_files import known_region

    rows = []
    for name, (family, config) in TINY.items():
        model = tiny_model(family, config)
        shape = tuple(config["shape"])
        scattered = torch.tensor([True, False, False, True]).reshape(shape)
        for where, mask in (("bottom-half", known_region(shape, "bottom-half")),
                            ("left-half", known_region(shape, "left-half")),
                            ("scattered", scattered)):
            given = hardest_given(model, mask)
            tvs = exact_gibbs_tv(model, given, mask, SWEEPS)
            rows.append({"model": name, "known": where,
                         "tv": {str(s): round(t, 4) for s, t in zip(SWEEPS, tvs)}})
    return rows


def timing(names: tuple[str, ...] = ("pixelcnn-digits", "made-digits"),
           n: int = 16) -> list[dict[str, Any]]:
    from zoo.cli.sample_files import known_region
    from zoo.plugin.registry import get_dataset

    digit = get_dataset("digits").load("test")[0]
    digit = digit[0] if isinstance(digit, (tuple, list)) else digit
    rows = []
    for name in names:
        model = zoo.load(name)
        shape = tuple(model.config.shape)
        image = digit.reshape(shape)
        for keep in ("bottom-half", "top-half"):
            mask = known_region(shape, keep)
            complete(model, image, mask, 2, sweeps=1)  # warm-up
            start, cpu = time.perf_counter(), time.process_time()
            done = complete(model, image, mask, n, generator=torch.Generator().manual_seed(0))
            rows.append({"model": name, "known": keep, "completions": n,
                         "seconds": round(time.perf_counter() - start, 3),
                         "cpu_seconds": round(time.process_time() - cpu, 3),
                         "method": done.record.method, "sweeps": done.record.sweeps})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-timing", action="store_true", help="only the TV table")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result: dict[str, Any] = {"default_sweeps": DEFAULT_SWEEPS, "tv_vs_sweeps": tv_table()}
    if not args.no_timing:
        result["seconds"] = timing()
    result["machine"] = {"cpu": platform.processor() or platform.machine(),
                         "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
