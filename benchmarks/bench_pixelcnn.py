"""PixelCNN sampling: the default (incremental) sampler against the naive reference.

The naive sampler runs one full forward pass over the whole image per pixel. The default one
keeps every layer's outputs in per-layer caches and, at each pixel, computes each layer at
that pixel only (the gated variant computes its vertical stack once per row): a few
matrix-vector products per layer instead of a pass over H x W pixels. When a draw is too
close to call within float rounding, both samplers decide it by the same float64 reference
computation (``reference_steps`` counts the pixels where the fast one did), so both give
identical samples for the same generator. The catalog's entries: ``bench_pixelcnn_entries``.

Default workload (issue 4): 16 samples of 28x28 images, C = 256 levels, 8 layers of 64
channels, the ``plain`` variant (residual blocks). ``--variant gated`` measures the gated
one (its naive run takes several times longer: about 1.1M parameters against 0.18M).

    python benchmarks/bench_pixelcnn.py                  # the issue's workload; prints JSON
    python benchmarks/bench_pixelcnn.py --side 14        # a quicker one

The naive sampler is slow by design (784 full forward passes): a minute or more on one
CPU core. ``run()`` returns the numbers as a dict for a benchmark suite. Timings on a shared
machine are noisy.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from typing import Any

import torch

import zoo


def build_model(side: int, levels: int, variant: str, layers: int, channels: int,
                seed: int = 0):
    torch.manual_seed(seed)
    config = {"shape": [1, side, side], "levels": levels, "variant": variant,
              "layers": layers, "channels": channels}
    return zoo.get_family("pixelcnn").build(config).eval()


def timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def run(*, samples: int = 16, side: int = 28, levels: int = 256, variant: str = "plain",
        layers: int = 8, channels: int = 64, seed: int = 0,
        threads: int | None = None) -> dict[str, Any]:
    """Time both samplers on the same generator seed; check that their samples are identical."""
    if threads is not None:
        torch.set_num_threads(threads)
    model = build_model(side, levels, variant, layers, channels, seed)
    # Warm-up (allocator, kernels) on a couple of samples, not timed.
    model.sample(2, generator=torch.Generator().manual_seed(seed + 1))
    fast, fast_s = timed(lambda: model.sample(
        samples, generator=torch.Generator().manual_seed(seed)))
    reference_steps = model.sampling_stats["reference_steps"]
    naive, naive_s = timed(lambda: model.sample_naive(
        samples, generator=torch.Generator().manual_seed(seed)))
    return {
        "benchmark": "pixelcnn_sampling",
        "samples": samples,
        "shape": [1, side, side],
        "levels": levels,
        "variant": variant,
        "layers": layers,
        "channels": channels,
        "parameters": sum(p.numel() for p in model.parameters()),
        "incremental_s": round(fast_s, 4),
        "naive_s": round(naive_s, 4),
        "speedup": round(naive_s / fast_s, 2),
        "identical": bool(torch.equal(fast, naive)),
        "reference_steps": reference_steps,
        "pixels": side * side,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--side", type=int, default=28)
    parser.add_argument("--levels", type=int, default=256)
    parser.add_argument("--variant", choices=["plain", "gated"], default="plain")
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--channels", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    result = run(samples=args.samples, side=args.side, levels=args.levels,
                 variant=args.variant, layers=args.layers, channels=args.channels,
                 seed=args.seed, threads=args.threads)
    print(json.dumps(result, indent=2))
    ok = result["identical"] and result["speedup"] >= 10
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
