"""PixelCNN sampling on the catalog's entries: the fast sampler against the naive one.

"N times faster" is the wall time of ``model.sample_naive(64, generator=g)`` over that of
``model.sample(64, generator=g)`` for an entry's config, in one process, on one torch thread,
in alternating rounds (medians). Both samplers draw exactly the same samples (checked here
whenever the naive sampler is run to the end).

The naive sampler is one full forward pass of the batch per pixel, and nothing else worth
timing (the draw itself is a few small operations), so on the 28x28 entries, where it takes
from minutes to hours on a CPU core, it is estimated: ``pixels x`` the median time of that
forward pass (``naive: "estimated"``). ``--full-naive`` runs it instead (and checks the
samples); the 8x8 digits entries are always run in full.

The model: the built entry when ``--built`` and it is in the store (``ZOO_HOME``; ``zoo pull
pixelcnn-digits`` builds it in about 30 s), otherwise the entry's config with fresh weights
(seed 0). Fresh weights give small logits (max |logit| about 0.4), so ``--logit-scale S``
multiplies the output layer by ``S`` (S = 30: max |logit| about 10, as trained models have),
which makes close calls, and so reference draws, more frequent. ``reference_steps`` counts
the pixels where some draw was too close to call and ``reference_draws`` those draws.

    python -m benchmarks.bench_pixelcnn_entries                           # all four, fresh
    python -m benchmarks.bench_pixelcnn_entries --entries pixelcnn-digits --built
    python -m benchmarks.bench_pixelcnn_entries --entries pixelcnn-mnist --logit-scale 30
    python -m benchmarks.bench_pixelcnn_entries --entries pixelcnn-binarized-mnist \
        --peer-path /work/shared/peers    # and pytorch-generative's sampler (issue 26)

``--peer-path`` (a folder with ``pgshim.py``, which puts pytorch-generative, commit d1f0a5c,
on the path) times pytorch-generative's ``PixelCNN`` of the same shape and size as
``pixelcnn-binarized-mnist`` (15 residual blocks, a stream of 128 channels, head 32), in the
same rounds: its ``sample`` is one forward pass of the batch per pixel, so it is estimated
the same way, ``pixels x`` its forward pass on 64 images.

Prints JSON. Timings on a shared machine are noisy: compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from typing import Any

import torch

import zoo

ENTRIES = ["pixelcnn-digits", "pixelcnn-mnist", "pixelcnn-binarized-mnist",
           "pixelcnn-binarized-mnist-cpu"]


def model_for(entry: str, built: bool, logit_scale: float, seed: int = 0):
    """The built entry (``built`` and in the store) or a fresh model of its config."""
    from zoo.catalog import catalog

    source = "fresh"
    model = None
    if built:
        try:
            model = zoo.load(entry, offline=True)
            source = "built"
        except Exception:  # noqa: BLE001 - not in the store: fall back to a fresh model
            model = None
    if model is None:
        torch.manual_seed(seed)
        model = zoo.get_family("pixelcnn").build(dict(catalog().get(entry).config))
    if logit_scale != 1.0:
        with torch.no_grad():
            model.net.head.out.weight.mul_(logit_scale)
            model.net.head.out.bias.mul_(logit_scale)
        source += f", output layer x {logit_scale:g}"
    return model.eval(), source


def timed(fn) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def measure(entry: str, *, samples: int, rounds: int, built: bool, logit_scale: float,
            full_naive: bool, seed: int = 0) -> dict[str, Any]:
    model, source = model_for(entry, built, logit_scale)
    _, height, width = model.shape
    pixels = height * width
    full = full_naive or pixels <= 64
    x = torch.randint(0, model.levels, (samples, 1, height, width),
                      generator=torch.Generator().manual_seed(seed))
    model.sample(2, generator=torch.Generator().manual_seed(seed + 1))  # warm-up
    fast_s, naive_s, stats, identical = [], [], [], True
    with torch.no_grad():
        model.logits(x)  # warm-up
        for _ in range(rounds):
            fast, t = timed(lambda: model.sample(
                samples, generator=torch.Generator().manual_seed(seed)))
            fast_s.append(t)
            stats.append(dict(model.sampling_stats))
            if full:
                naive, t = timed(lambda: model.sample_naive(
                    samples, generator=torch.Generator().manual_seed(seed)))
                identical = identical and bool(torch.equal(fast, naive))
                naive_s.append(t)
            else:
                _, t = timed(lambda: model.logits(x))
                naive_s.append(t * pixels)
    fast_med, naive_med = statistics.median(fast_s), statistics.median(naive_s)
    return {
        "entry": entry,
        "model": source,
        "samples": samples,
        "pixels": pixels,
        "parameters": sum(p.numel() for p in model.parameters()),
        "fast_s": round(fast_med, 4),
        "naive_s": round(naive_med, 3),
        "naive": "run" if full else "estimated: pixels x median full forward pass",
        "speedup": round(naive_med / fast_med, 1),
        "identical": identical if full else None,
        "reference_steps": [s["reference_steps"] for s in stats],
        "reference_draws": [s.get("reference_draws") for s in stats],
        "rounds": rounds,
    }


def peer(path: str, fast_entry: str, *, samples: int, rounds: int,
         seed: int = 0) -> dict[str, Any]:
    """pytorch-generative's PixelCNN sampler (estimated) against zoo's fast one."""
    import sys

    sys.path.insert(0, path)
    from pgshim import PGPixelCNN  # only with --peer-path

    torch.manual_seed(seed)
    # 15 residual blocks, a stream of 2 x 64 = 128 channels, head 32: pixelcnn-binarized-mnist's
    # shape and size (its default, residual_channels=128, is a stream of 256: 3.6 times the
    # parameters).
    theirs = PGPixelCNN(residual_channels=64).eval()
    ours, source = model_for(fast_entry, False, 1.0, seed)
    _, height, width = ours.shape
    x = torch.rand(samples, 1, height, width, generator=torch.Generator().manual_seed(seed))
    ours.sample(2, generator=torch.Generator().manual_seed(seed + 1))
    fast_s, peer_s = [], []
    with torch.no_grad():
        theirs(x)  # warm-up
        for _ in range(rounds):
            fast_s.append(timed(lambda: ours.sample(
                samples, generator=torch.Generator().manual_seed(seed)))[1])
            peer_s.append(timed(lambda: theirs(x))[1] * height * width)
    fast_med, peer_med = statistics.median(fast_s), statistics.median(peer_s)
    return {"peer": "pytorch-generative PixelCNN(residual_channels=64) (d1f0a5c)",
            "peer_parameters": sum(p.numel() for p in theirs.parameters()),
            "zoo": f"{fast_entry} ({source}), sample()",
            "zoo_parameters": sum(p.numel() for p in ours.parameters()),
            "samples": samples, "zoo_fast_s": round(fast_med, 4),
            "peer_sample_s": round(peer_med, 3),
            "peer_sample": "estimated: pixels x median forward pass (its sampler's work)",
            "speedup": round(peer_med / fast_med, 1), "rounds": rounds}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", nargs="+", default=ENTRIES)
    parser.add_argument("--samples", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--built", action="store_true")
    parser.add_argument("--logit-scale", type=float, default=1.0)
    parser.add_argument("--full-naive", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--peer-path", default=None,
                        help="a folder with pgshim.py: also time pytorch-generative's sampler")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results = [measure(entry, samples=args.samples, rounds=args.rounds, built=args.built,
                       logit_scale=args.logit_scale, full_naive=args.full_naive)
               for entry in args.entries]
    record: dict[str, Any] = {}
    if args.peer_path:
        record["peer"] = peer(args.peer_path, "pixelcnn-binarized-mnist",
                              samples=args.samples, rounds=args.rounds)
    print(json.dumps({"benchmark": "pixelcnn_entries_sampling", "results": results, **record,
                      "threads": torch.get_num_threads(), "torch": torch.__version__,
                      "machine": platform.processor() or platform.machine()}, indent=2))
    return 0 if all(r["identical"] is not False for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
