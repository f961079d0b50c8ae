"""One JSON record per installed family: training speed, scoring and sampling speed, memory, NLL.

Families are found through zoo's plugin registry, so a third-party family is measured too.
Each gets a small fixed config on an offline dataset (``FIXED``; otherwise the family's
defaults on moons or digits) and a fixed budget (``--steps`` optimisation steps of
``--batch-size``), and is measured in a fresh process, so that its peak memory is its own:

- ``train_steps_per_s``, ``train_examples_per_s``: the generic trainer's loop (``fit``);
- ``log_prob_examples_per_s``: scoring the test split without gradients;
- ``sample_seconds_per_batch``: drawing ``--sample-batch`` samples;
- ``peak_rss_mb`` (process high-water mark, torch and data included; ``rss_before_model_mb``
  is the mark before the model existed) or ``peak_gpu_memory_mb`` on a GPU;
- ``test_nll`` (nats per example, with its standard error) after the budget;
- ``machine``: where it ran.

    python -m benchmarks                      # every family, CPU or GPU (auto)
    python -m benchmarks --family realnvp --steps 200 --device cpu

Timings on a shared machine are noisy; compare records taken on the same machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from typing import Any

# Small, fixed configs per known family; keys a family's Config lacks are dropped, so a
# renamed option falls back to the family default instead of failing the benchmark.
FIXED: dict[str, tuple[str, dict[str, Any]]] = {
    "realnvp": ("moons", {"couplings": 8, "hidden": 64}),
    "made": ("digits", {"hidden": [256]}),
    "pixelcnn": ("digits", {"channels": 32, "layers": 4, "head_channels": 32}),
}
DEFAULT_DATASET = {"continuous": "moons", "discrete": "digits"}


def families() -> list[str]:
    """The names of the installed families (no torch import)."""
    from zoo.plugin.registry import registry

    return registry().names("families")


def _rss_mb() -> float:
    import resource

    # ru_maxrss is in KiB on Linux, bytes on macOS.
    scale = 1 / 1024 if sys.platform != "darwin" else 1 / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def choose_config(family: Any) -> tuple[str, dict[str, Any]]:
    """The dataset and config a family is benchmarked with."""
    from zoo import api

    dataset_name, overrides = FIXED.get(family.name, (DEFAULT_DATASET[family.data_kind], {}))
    dataset = api.get_dataset(dataset_name)
    fields = {f.name for f in dataclasses.fields(family.Config)}
    config: dict[str, Any] = {"shape": list(dataset.shape)}
    if dataset.levels is not None and "levels" in fields:
        config["levels"] = dataset.levels
    config.update({k: v for k, v in overrides.items() if k in fields})
    return dataset_name, config


def bench_family(name: str, *, steps: int = 300, batch_size: int = 128, device: str = "auto",
                 sample_batch: int = 64, threads: int = 1, seed: int = 0) -> dict[str, Any]:
    """Measure one family; returns its JSON record."""
    import torch

    from zoo import api
    from zoo.catalog.recipe import Recipe
    from zoo.infer.evaluation import evaluate_on
    from zoo.training.devices import describe_machine, resolve_device
    from zoo.training.loop import maximise_likelihood

    torch.set_num_threads(threads)
    dev = resolve_device(device)
    family = api.get_family(name)
    dataset_name, config = choose_config(family)
    dataset = api.get_dataset(dataset_name)
    train, test = dataset.load("train"), dataset.load("test")
    recipe = Recipe(steps=steps, batch_size=batch_size, lr=1e-3, seed=seed, val_fraction=0.0,
                    eval_every=steps, schedule="cosine")
    rss_before = _rss_mb()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    torch.manual_seed(seed)
    model = family.build(config)
    result = maximise_likelihood(model, dataset, recipe, progress=False, device=dev, train_data=train)

    # Scoring: the whole test split in batches of 1024, after one warm-up batch.
    with torch.no_grad():
        model.log_prob(test[:1024].to(dev))
    tic = time.perf_counter()
    score = evaluate_on(model, test, batch_size=1024)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    log_prob_seconds = time.perf_counter() - tic

    generator = torch.Generator(device=dev).manual_seed(seed)
    model.sample(2, generator=generator)  # warm-up
    times = []
    for _ in range(3):
        tic = time.perf_counter()
        model.sample(sample_batch, generator=generator)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        times.append(time.perf_counter() - tic)

    record: dict[str, Any] = {
        "benchmark": "family",
        "family": name,
        "dataset": dataset_name,
        "config": config,
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": steps,
        "batch_size": batch_size,
        "train_steps_per_s": result.steps_per_second,
        "train_examples_per_s": result.steps_per_second * batch_size,
        "log_prob_examples_per_s": len(test) / log_prob_seconds,
        "sample_batch": sample_batch,
        "sample_seconds_per_batch": sorted(times)[len(times) // 2],
        "test_nll": score.nll,
        "test_nll_stderr": score.stderr,
        "bits_per_dim": score.bits_per_dim,
        "peak_rss_mb": round(_rss_mb(), 1),
        "rss_before_model_mb": round(rss_before, 1),
    }
    if dev.type == "cuda":
        record["peak_gpu_memory_mb"] = round(torch.cuda.max_memory_allocated(dev) / 2**20, 1)
    record["machine"] = describe_machine(dev)
    return record


def run_isolated(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """``bench_family`` in a fresh interpreter (its own peak memory); a failure becomes a note."""
    command = [sys.executable, "-m", "benchmarks.run", "--one", name, "--steps", str(args.steps),
               "--batch-size", str(args.batch_size), "--device", args.device,
               "--threads", str(args.threads), "--sample-batch", str(args.sample_batch)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.run(command, capture_output=True, text=True, cwd=root)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode == 0 and lines:
        return json.loads(lines[-1])
    error = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"benchmark": "family", "family": name, "skipped": f"failed: {error}"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("--family", action="append", help="Only this family (repeatable).")
    parser.add_argument("--steps", type=int, default=300, help="Training budget in steps.")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1).")
    parser.add_argument("--sample-batch", type=int, default=64)
    parser.add_argument("--in-process", action="store_true",
                        help="Measure every family in this process (peak memory is then shared).")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # the child of run_isolated
    args = parser.parse_args(argv)
    options = dict(steps=args.steps, batch_size=args.batch_size, device=args.device,
                   sample_batch=args.sample_batch, threads=args.threads)
    if args.one:
        print(json.dumps(bench_family(args.one, **options)), flush=True)
        return 0
    installed = families()
    wanted = args.family or installed
    for name in wanted:
        if name not in installed:
            record = {"benchmark": "family", "family": name,
                      "skipped": f"not installed (installed: {', '.join(installed) or 'none'})"}
        elif args.in_process:
            try:
                record = bench_family(name, **options)
            except Exception as exc:  # one broken family must not hide the others' numbers
                record = {"benchmark": "family", "family": name,
                          "skipped": f"failed: {type(exc).__name__}: {exc}"}
        else:
            record = run_isolated(name, args)
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
