"""The MNIST GPU tier in one command: train and evaluate every GPU entry on real MNIST.

    python -m benchmarks.gpu_mnist                                   # one GPU: bf16, compiled step
    python -m benchmarks.gpu_mnist --device cpu --minutes 2 --test-limit 1000   # no GPU

The GPU entries are the literature-sized MNIST recipes of ``registry.yaml`` (those whose
description names this script): ``made-binarized-mnist``, ``pixelcnn-binarized-mnist``,
``realnvp-mnist``, ``made-mnist`` and ``pixelcnn-mnist``. Each is trained from its recipe
within a wall-clock budget (``--minutes``, at most 10 per entry): the recipe's step count,
or fewer when a timing of the first steps says they would not fit, with the learning-rate
schedule compressed to the steps that run. Then it is scored on the official test split
and compared with its paper's figure (the entry's ``literature``).

MNIST comes from ``--data`` (default: ``$ZOO_DATA``, else ``../shared/data`` beside the
repository), read-only: gzipped files are decompressed into ``$ZOO_HOME``'s cache.

Output: one JSON record per entry, a line each, on stdout and appended to ``--out``. A record
says how it was measured (device, card, steps run and the recipe's, seconds, threads, load
average); ``cpu_budget: true`` marks a CPU run, whose NLL is what a fixed CPU budget reaches,
not the recipe's result. ``--test-limit N`` scores only the first N test images (also in the
record as ``test_n``): on a CPU, scoring the big models on all 10,000 takes longer than
their training budget.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()
GPU_ENTRIES = ("made-binarized-mnist", "pixelcnn-binarized-mnist", "realnvp-mnist",
               "made-mnist", "pixelcnn-mnist")
MAX_MINUTES = 10.0
RESERVE = 0.25  # of the budget kept for compiling, validation and the final scoring


def budget_recipe(recipe: Any, steps: int, *, validate: bool) -> Any:
    """The recipe squeezed into ``steps``: warm-up and validation scaled to fit."""
    return dataclasses.replace(
        recipe, steps=steps,
        warmup_steps=min(recipe.warmup_steps, steps // 10),
        eval_every=min(recipe.eval_every, steps),
        val_fraction=recipe.val_fraction if validate else 0.0)


def run_entry(name: str, *, device_name: str, minutes: float, test_limit: int | None,
              compile_step: bool) -> dict[str, Any]:
    """Train ``name`` within ``minutes`` on the device, score it, and describe how."""
    import torch

    from zoo.api.estimate import seconds_per_step
    from zoo.api.rankings import literature_of
    from zoo.catalog import catalog
    from zoo.infer.evaluation import evaluate
    from zoo.plugin.registry import get_dataset, get_family
    from zoo.training.devices import resolve_device

    entry = catalog().get(name)
    device = resolve_device(device_name)
    cuda = device.type == "cuda"
    family, dataset = get_family(entry.family), get_dataset(entry.dataset)
    per_step = seconds_per_step(entry, device, bf16=cuda)  # eager: a compiled step is faster
    budget = minutes * 60
    steps = max(1, min(entry.recipe.steps, int(budget * (1 - RESERVE) / per_step)))
    recipe = budget_recipe(entry.recipe, steps, validate=cuda)
    torch.manual_seed(recipe.seed)
    model = family.build(entry.config)
    start = time.perf_counter()
    family.train(model, dataset, recipe, progress=False, device=device, bf16=cuda,
                 compile=compile_step and cuda)
    train_s = time.perf_counter() - start
    test = dataset.load("test")
    if test_limit:
        test = test[:test_limit]
    start = time.perf_counter()
    model.eval()
    score = evaluate(model, test.to(device), recipe.eval_batch_size)
    eval_s = time.perf_counter() - start
    dims = math.prod(dataset.shape)
    paper, (gap, gap_bpd) = literature_of(entry, score.nll, dims)
    return {
        "entry": name, "family": entry.family, "dataset": entry.dataset,
        "device": str(device), "card": torch.cuda.get_device_name() if cuda else cpu_model(),
        "cpu_budget": not cuda, "budget_s": budget, "torch_threads": torch.get_num_threads(),
        "bf16": cuda, "compiled": compile_step and cuda,
        "steps": steps, "recipe_steps": entry.recipe.steps,
        "seconds_per_step_estimate": per_step, "train_s": round(train_s, 1),
        "eval_s": round(eval_s, 1), "test_n": score.n, "test_limited": bool(test_limit),
        "test_nll": score.nll, "test_nll_stderr": score.stderr,
        "bits_per_dim": score.bits_per_dim, "bound": bool(getattr(model, "likelihood_bound", False)),
        "literature": paper, "gap_nll": gap, "gap_bits_per_dim": gap_bpd,
        "load_average": list(os.getloadavg()),
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return "cpu"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--minutes", type=float, default=MAX_MINUTES,
                        help=f"wall-clock budget per entry (at most {MAX_MINUTES:g})")
    parser.add_argument("--entries", nargs="*", default=list(GPU_ENTRIES))
    parser.add_argument("--data", type=Path, help="the folder holding MNIST/raw")
    parser.add_argument("--test-limit", type=int, help="score the first N test images only")
    parser.add_argument("--no-compile", action="store_true", help="eager steps on the GPU")
    parser.add_argument("--out", type=Path, help="append the JSON records to this file")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= MAX_MINUTES:
        parser.error(f"--minutes must be in (0, {MAX_MINUTES:g}]")
    data = args.data or (Path(os.environ["ZOO_DATA"]) if os.environ.get("ZOO_DATA") else SHARED_DATA)
    if not (data / "MNIST" / "raw").is_dir():
        print(f"error: no MNIST/raw under {data}: pass --data or set ZOO_DATA", file=sys.stderr)
        return 2
    os.environ["ZOO_DATA"] = str(data)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: no CUDA device here; use --device cpu --minutes M for CPU-budget figures",
              file=sys.stderr)
        return 2
    torch.set_num_threads(int(os.environ.get("ZOO_THREADS", "1")))
    for name in args.entries:
        record = run_entry(name, device_name=args.device, minutes=args.minutes,
                           test_limit=args.test_limit, compile_step=not args.no_compile)
        line = json.dumps(record, sort_keys=True)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
