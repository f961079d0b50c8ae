"""MADE sampling: the default (incremental) sampler against the naive reference.

The naive sampler runs one full forward pass per position; the incremental one keeps the first
layer's pre-activations and adds each drawn value's contribution, so a step costs the output
rows of one position. Both must give identical samples for the same generator.

Default workload (issue 3): 64 samples of 28x28 images, C = 256 levels, one hidden layer of
1024 units. At C = 256 a one-hot input and a full output layer would hold 2 x 784*256*1024
= 411M weights, so the model uses the family's options for large ``C * D``: embedded inputs
(``embedding_dim``) and a low-rank output (``output_rank``), as the made-mnist entry does.

    python benchmarks/bench_made.py                 # the issue's workload; prints JSON
    python benchmarks/bench_made.py --side 14       # a quicker one

The naive sampler is slow by design (784 full forward passes in float64): minutes on a
laptop-class CPU. ``run()`` returns the numbers as a dict for a benchmark suite.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

import zoo


def build_model(side: int, levels: int, hidden: int, embedding_dim: int, output_rank: int,
                seed: int = 0):
    torch.manual_seed(seed)
    config = {"shape": [1, side, side], "levels": levels, "hidden": [hidden],
              "inputs": "embedding", "embedding_dim": embedding_dim,
              "output_rank": output_rank}
    return zoo.get_family("made").build(config).eval()


def timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(*, samples: int = 64, side: int = 28, levels: int = 256, hidden: int = 1024,
        embedding_dim: int = 8, output_rank: int = 16, seed: int = 0,
        threads: int | None = None) -> dict[str, Any]:
    """Time both samplers on the same generator seed; check that their samples are identical."""
    if threads is not None:
        torch.set_num_threads(threads)
    model = build_model(side, levels, hidden, embedding_dim, output_rank, seed)
    # Warm-up (allocator, kernels) on a couple of samples, not timed.
    model.sample(2, generator=torch.Generator().manual_seed(seed))
    fast, fast_s = timed(lambda: model.sample(
        samples, generator=torch.Generator().manual_seed(seed)))
    naive, naive_s = timed(lambda: model.sample_naive(
        samples, generator=torch.Generator().manual_seed(seed)))
    params, _ = model.config.sizes()
    return {
        "benchmark": "made_sampling",
        "samples": samples,
        "shape": [1, side, side],
        "levels": levels,
        "hidden": hidden,
        "embedding_dim": embedding_dim,
        "output_rank": output_rank,
        "parameters": params,
        "incremental_s": round(fast_s, 4),
        "naive_s": round(naive_s, 4),
        "speedup": round(naive_s / fast_s, 2),
        "identical": bool(torch.equal(fast, naive)),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--levels", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--output-rank", type=int, default=16)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    result = run(samples=args.samples, side=args.side, levels=args.levels, hidden=args.hidden,
                 embedding_dim=args.embedding_dim, output_rank=args.output_rank,
                 threads=args.threads)
    print(json.dumps(result, indent=2))
    ok = result["identical"] and result["speedup"] >= 5
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
