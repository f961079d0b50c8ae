"""Training a catalog entry on 1 and on N processes (DDP, gloo on CPU / NCCL on GPU).

Every run uses the entry's recipe (same seed, same global batch: each of N processes takes
``batch_size / N``) for ``--steps`` steps and reports, from rank 0:

- ``steps_per_s`` / ``examples_per_s``: optimisation steps in the training loop (the
  trainer's own clock: validation and start-up excluded);
- ``test_nll`` (nats per example, with standard error) of the trained weights;
- ``time_to_target_s``: with ``--target NLL``, the wall seconds (test scoring excluded) until the test NLL
  (checked at every evaluation step of the recipe) first reached ``NLL``; training stops there.

The last record compares the runs: ``throughput_ratio`` (N processes / 1 process) and the
difference of their test NLLs in standard errors.

    python -m benchmarks.bench_train                                  # realnvp-moons, 1 vs 2 CPU processes
    python -m benchmarks.bench_train --entry made-mnist --device cuda --nproc 1 --target 88.04

Workers run in fresh processes (``--nproc 1``: one plain process; more: zoo's torchrun
launcher, as ``zoo train NAME --nproc N`` does).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


class TargetReached(Exception):
    """Raised on every rank at once (their test NLLs are all-reduced, hence equal)."""


def worker(args: argparse.Namespace) -> None:
    """One rank of a run: train the entry, evaluate, and (rank 0) write the record."""
    import torch

    from zoo import api
    from zoo.infer.evaluation import evaluate_on
    from zoo.training import distributed
    from zoo.training.devices import describe_machine, resolve_device
    from zoo.training.loop import maximise_likelihood, mean_nll_across_ranks

    torch.set_num_threads(args.threads)
    entry = api.get_entry(args.entry)
    family, dataset = api.get_family(entry.family), api.get_dataset(entry.dataset)
    recipe = entry.recipe
    ctx = distributed.context()
    device = resolve_device(args.device, local_rank=ctx.local_rank)
    test = dataset.load("test") if args.target is not None else None
    torch.manual_seed(recipe.seed)
    model = family.build(entry.config)
    reached: dict[str, float] = {}
    start = time.perf_counter()
    paused = 0.0  # seconds spent scoring the test split, not training

    def check_target(step: int, record: dict[str, float]) -> None:
        nonlocal paused
        tic = time.perf_counter()
        nll = mean_nll_across_ranks(model, test, recipe.eval_batch_size)
        model.train()
        paused += time.perf_counter() - tic
        if nll <= args.target:
            reached.update(step=step, test_nll=nll, seconds=time.perf_counter() - start - paused)
            raise TargetReached

    try:
        result = maximise_likelihood(model, dataset, recipe, steps=args.steps, progress=False, device=device,
                     callback=check_target if args.target is not None else None)
    except TargetReached:
        result = None
    if not ctx.is_main:
        return
    record: dict[str, Any] = {"benchmark": "train", "entry": args.entry, "nproc": ctx.world_size,
                              "threads_per_process": args.threads, "device": str(device),
                              "batch_size": recipe.batch_size}
    if result is not None:
        score = evaluate_on(model, dataset.load("test"), recipe.eval_batch_size)
        record.update(steps=result.steps, train_seconds=result.seconds,
                      steps_per_s=result.steps_per_second,
                      examples_per_s=result.steps_per_second * recipe.batch_size,
                      test_nll=score.nll, test_nll_stderr=score.stderr, best_step=result.best_step)
    if args.target is not None:
        record["target"] = args.target
        record["time_to_target_s"] = reached.get("seconds")
        record["target_step"] = reached.get("step")
        if reached:
            record["steps_per_s"] = reached["step"] / reached["seconds"]
    record["machine"] = describe_machine(device)
    Path(args.worker).write_text(json.dumps(record))


def run(nproc: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Start one run of ``nproc`` processes and return rank 0's record."""
    command = ["-m", "benchmarks.bench_train", "--worker", str(out), "--entry", args.entry,
               "--device", args.device, "--threads", str(args.threads)]
    if args.steps is not None:
        command += ["--steps", str(args.steps)]
    if args.target is not None:
        command += ["--target", str(args.target)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    if nproc == 1:
        subprocess.run([sys.executable, *command], check=True, cwd=ROOT, env=env)
    else:
        launcher = ("import sys; from zoo.training.distributed import launch; "
                    "launch(int(sys.argv[1]), sys.argv[2:])")
        subprocess.run([sys.executable, "-c", launcher, str(nproc), *command], check=True,
                       cwd=ROOT, env=env)
    return json.loads(out.read_text())


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    base = records[0]
    rows = []
    for rec in records[1:]:
        row: dict[str, Any] = {"nproc": rec["nproc"], "vs_nproc": base["nproc"]}
        if "steps_per_s" in rec and "steps_per_s" in base:
            row["throughput_ratio"] = rec["steps_per_s"] / base["steps_per_s"]
        if "test_nll" in rec and "test_nll" in base:
            diff = rec["test_nll"] - base["test_nll"]
            se = math.hypot(rec["test_nll_stderr"], base["test_nll_stderr"])
            row["test_nll_difference"] = diff
            row["difference_in_stderr"] = diff / se if se > 0 else float("nan")
        rows.append(row)
    return {"benchmark": "train_comparison", "entry": base["entry"], "rows": rows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_train")
    parser.add_argument("--entry", default="realnvp-moons", help="Catalog entry to train.")
    parser.add_argument("--steps", type=int, help="Override the recipe's steps.")
    parser.add_argument("--nproc", default="1,2", help="Process counts to compare, e.g. 1,2.")
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process.")
    parser.add_argument("--target", type=float, help="Stop at this test NLL; report the time.")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        for nproc in (int(n) for n in args.nproc.split(",")):
            record = run(nproc, args, Path(tmp) / f"nproc{nproc}.json")
            print(json.dumps(record), flush=True)
            records.append(record)
    if len(records) > 1:
        print(json.dumps(compare(records)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
