"""Our RealNVP against its peers (zuko, normflows), training steps per second, side by side.

Protocol: two moons (the training split), 8 affine couplings, MLPs of two hidden layers of 64
(35,344 parameters on every side), batches of 256, one CPU thread (``--threads``). Each model
runs under two optimizers, the same on every side: AdamW ``fused`` (zoo's trainer uses it)
and PyTorch's ``default`` AdamW (the foreach loop). The run is one call of
``zoo.training.loop.maximise_likelihood`` (our model, the trainer's own loop: batching, schedule, loss check);
at each of its rounds (``eval_every = --steps``) a callback times the round and then runs one
round of every other runner, in an order reversed every round, so that machine load hits
every side alike. Ratios are the median over rounds of the per-round ratio.

- ``zoo/<opt>``, ``zuko/<opt>``, ``normflows/<opt>``: forward, backward and optimizer step in
  a plain loop, the batches drawn beforehand;
- ``zoo_fit``: our model through ``fit``, eagerly or, with ``--compile``, under
  ``torch.compile`` (its first round, compilation included, is reported as
  ``compile_seconds`` and left out of the rates). ``fit`` is what ``zoo pull`` and
  ``zoo train`` run: one fused AdamW step on one flat tensor (``zoo.training.adam_step``),
  subnormals flushed to zero (``zoo.training.denormals``), and RealNVP's hand-written
  coupling gradients (``zoo_realnvp.fused``). The plain loops run under torch's defaults.

    python -m benchmarks.bench_realnvp [--rounds 15 --steps 100 --compile]

Peers that are not installed are skipped (``pip install -e .[bench]`` installs both).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch

from benchmarks import load_average
from zoo import api
from zoo.catalog.recipe import Recipe
from zoo.training.devices import describe_machine, resolve_device
from zoo.training.loop import make_optimizer, maximise_likelihood

COUPLINGS, HIDDEN, BATCH, LR = 8, 64, 256, 1e-3
OPTIMIZERS = ("fused", "default")


def zoo_model() -> Any:
    torch.manual_seed(0)
    return api.get_family("realnvp").build({"shape": [2], "couplings": COUPLINGS, "hidden": HIDDEN,
                                            "layers": 2})


def peers() -> dict[str, Callable[[], tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]]]:
    """The installed peers: name -> a function giving (module, log_prob of a batch)."""
    found = {}
    try:
        import zuko

        def make_zuko():
            torch.manual_seed(0)
            flow = zuko.flows.RealNVP(2, transforms=COUPLINGS, hidden_features=(HIDDEN, HIDDEN))
            return flow, lambda x: flow().log_prob(x)

        found["zuko"] = make_zuko
    except ImportError:
        pass
    try:
        import normflows as nf

        def make_normflows():
            # normflows' documented RealNVP: affine coupling blocks with swaps in between.
            torch.manual_seed(0)
            flows = []
            for _ in range(COUPLINGS):
                flows += [nf.flows.AffineCouplingBlock(nf.nets.MLP([1, HIDDEN, HIDDEN, 2],
                                                                   init_zeros=True)),
                          nf.flows.Permute(2, mode="swap")]
            flow = nf.NormalizingFlow(nf.distributions.base.DiagGaussian(2, trainable=False), flows)
            return flow, flow.log_prob

        found["normflows"] = make_normflows
    except ImportError:
        pass
    return found


def make_opt(module: torch.nn.Module, kind: str) -> torch.optim.Optimizer:
    if kind == "fused":
        return make_optimizer(module, Recipe(lr=LR))  # type: ignore[arg-type]
    return torch.optim.AdamW(module.parameters(), lr=LR)


def stepper(module: torch.nn.Module, log_prob: Callable[[torch.Tensor], torch.Tensor],
            kind: str, data: torch.Tensor) -> Callable[[int], float]:
    """A function that runs ``n`` training steps and returns the seconds they took."""
    optimizer = make_opt(module, kind)
    generator = torch.Generator().manual_seed(1)

    def run(n: int) -> float:
        batches = [data[torch.randint(len(data), (BATCH,), generator=generator)] for _ in range(n)]
        tic = time.perf_counter()
        for x in batches:
            loss = -log_prob(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return time.perf_counter() - tic

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_realnvp")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=100, help="Steps per round and runner.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--compile", action="store_true", help="zoo_fit under torch.compile.")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    device = resolve_device("cpu")
    data = api.get_dataset("moons").load("train")
    found = peers()
    runners: dict[str, Callable[[int], float]] = {}
    params: dict[str, int] = {}
    for kind in OPTIMIZERS:
        ours = zoo_model()
        runners[f"zoo/{kind}"] = stepper(ours, ours.log_prob, kind, data)
        params["zoo"] = sum(p.numel() for p in ours.parameters())
        for name, make in found.items():
            module, log_prob = make()
            runners[f"{name}/{kind}"] = stepper(module, log_prob, kind, data)
            params[name] = sum(p.numel() for p in module.parameters())
    for run in runners.values():  # warm-up: allocator, kernels, lazy initialisation
        run(10)

    rates: dict[str, list[float]] = {name: [] for name in [*runners, "zoo_fit"]}
    state = {"tic": time.perf_counter(), "round": -1, "compile_seconds": None}

    def between_rounds(step: int, record: dict[str, float]) -> None:
        seconds = time.perf_counter() - state["tic"]
        if state["round"] < 0:  # the warm-up round: compilation, first calls
            state["compile_seconds"] = seconds if args.compile else None
        else:
            rates["zoo_fit"].append(args.steps / seconds)
        state["round"] += 1
        if state["round"] <= args.rounds:
            order = list(runners) if state["round"] % 2 else list(runners)[::-1]
            if state["round"] > 0:
                # A plain loop runs under torch's defaults, as a user's would: the trainer
                # flushes subnormals (zoo.training.denormals) only for its own steps.
                torch.set_flush_denormal(False)
                for name in order:
                    rates[name].append(args.steps / runners[name](args.steps))
                torch.set_flush_denormal(True)
        state["tic"] = time.perf_counter()

    load_before = load_average()
    maximise_likelihood(zoo_model(), api.get_dataset("moons"),
        Recipe(steps=args.steps * (args.rounds + 1), batch_size=BATCH, lr=LR, val_fraction=0.0,
               eval_every=args.steps),
        progress=False, device=device, train_data=data, callback=between_rounds,
        compile=args.compile)
    rounds = min(len(v) for v in rates.values())
    median = {name: statistics.median(v) for name, v in rates.items()}

    def ratio(a: str, b: str) -> float:
        return round(statistics.median(x / y for x, y in zip(rates[a][:rounds], rates[b][:rounds])), 3)

    record: dict[str, Any] = {
        "benchmark": "realnvp_vs_peers",
        "protocol": {"dataset": "moons", "couplings": COUPLINGS, "hidden": [HIDDEN, HIDDEN],
                     "batch_size": BATCH, "lr": LR, "optimizers": "AdamW fused / default",
                     "rounds": rounds, "steps_per_round": args.steps, "compile": args.compile},
        "steps_per_s": {name: round(v, 1) for name, v in median.items()},
        "ratios": {},
        "per_round_steps_per_s": {name: [round(r, 1) for r in v] for name, v in rates.items()},
        "compile_seconds": state["compile_seconds"],
        "parameters": params,
        "peers": {name: _version(name) for name in found},
        "load_average": [load_before, load_average()],
        "machine": describe_machine(device),
    }
    for name in found:
        for kind in OPTIMIZERS:
            record["ratios"][f"zoo/{name} {kind}"] = ratio(f"zoo/{kind}", f"{name}/{kind}")
        record["ratios"][f"zoo_fit/{name} fused"] = ratio("zoo_fit", f"{name}/fused")
    if not found:
        record["skipped_peers"] = "neither zuko nor normflows is installed (pip install -e .[bench])"
    print(json.dumps(record))
    return 0


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
