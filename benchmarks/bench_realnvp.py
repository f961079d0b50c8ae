"""Our RealNVP against zuko's, training steps per second, side by side.

Protocol: two moons (the training split), 8 couplings, MLPs of two hidden layers of 64,
batches of 256, one CPU thread (``--threads``), the same optimizer for both (AdamW, fused
where torch offers it, as zoo's trainer uses). Rounds alternate between the two models so
that both see the same machine load; the record gives the median over rounds.

- ``zoo_steps_per_s``: our model in a plain loop (forward, backward, optimizer step);
- ``zoo_fit_steps_per_s``: our model through ``zoo.training.fit`` (batching included);
- ``zuko_steps_per_s``: ``zuko.flows.RealNVP(2, transforms=8, hidden_features=(64, 64))``
  in the same loop as ours;
- ``ratio`` = zoo / zuko (target: at least 1.5), ``ratio_fit`` = zoo via fit / zuko.

    python -m benchmarks.bench_realnvp [--rounds 7 --steps 100 --device cpu]

Needs the ``bench`` extra (``pip install -e .[bench]``, which installs zuko).
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

from zoo import api
from zoo.devices import describe_machine, resolve_device
from zoo.recipe import Recipe
from zoo.training import fit, make_optimizer

COUPLINGS, HIDDEN, BATCH = 8, 64, 256


def zoo_model() -> Any:
    torch.manual_seed(0)
    return api.get_family("realnvp").build({"shape": [2], "couplings": COUPLINGS, "hidden": HIDDEN,
                                            "layers": 2})


def zuko_flow() -> Any:
    import zuko

    torch.manual_seed(0)
    return zuko.flows.RealNVP(2, transforms=COUPLINGS, hidden_features=(HIDDEN, HIDDEN))


def optimizer_for(module: torch.nn.Module) -> torch.optim.Optimizer:
    """zoo's trainer optimizer (AdamW, fused when possible), for either model."""
    return make_optimizer(module, Recipe(lr=1e-3))  # type: ignore[arg-type]


def stepper(loss_fn: Callable[[torch.Tensor], torch.Tensor], module: torch.nn.Module,
            data: torch.Tensor, seed: int) -> Callable[[int], float]:
    """A function that runs ``n`` training steps and returns the seconds they took."""
    optimizer = optimizer_for(module)
    generator = torch.Generator().manual_seed(seed)

    def run(n: int) -> float:
        batches = [data[torch.randint(len(data), (BATCH,), generator=generator)] for _ in range(n)]
        if data.is_cuda:
            torch.cuda.synchronize()
        tic = time.perf_counter()
        for x in batches:
            loss = -loss_fn(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if data.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - tic

    return run


def fit_stepper(data: torch.Tensor, device: torch.device) -> Callable[[int], float]:
    dataset = api.get_dataset("moons")

    def run(n: int) -> float:
        result = fit(zoo_model(), dataset, Recipe(steps=n, batch_size=BATCH, val_fraction=0.0,
                                                  eval_every=n), progress=False, device=device,
                     train_data=data.cpu())
        return result.seconds

    return run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_realnvp")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=100, help="Steps per round and model.")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    args = parser.parse_args(argv)
    try:
        import zuko
    except ImportError:
        print(json.dumps({"benchmark": "realnvp_vs_zuko", "skipped": "zuko is not installed "
                          "(pip install -e .[bench])"}))
        return 0
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    data = api.get_dataset("moons").load("train").to(device)
    ours = zoo_model().to(device)
    theirs = zuko_flow().to(device)
    runners = {
        "zoo": stepper(ours.log_prob, ours, data, seed=1),
        "zuko": stepper(lambda x: theirs().log_prob(x), theirs, data, seed=1),
        "zoo_fit": fit_stepper(data, device),
    }
    for run in runners.values():  # warm-up: allocator, kernels, lazy initialisation
        run(10)
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            rates[name].append(args.steps / run(args.steps))
    median = {name: statistics.median(values) for name, values in rates.items()}
    record = {
        "benchmark": "realnvp_vs_zuko",
        "protocol": {"dataset": "moons", "couplings": COUPLINGS, "hidden": [HIDDEN, HIDDEN],
                     "batch_size": BATCH, "optimizer": "AdamW (zoo.training.make_optimizer)",
                     "rounds": args.rounds, "steps_per_round": args.steps},
        "zoo_steps_per_s": median["zoo"],
        "zoo_fit_steps_per_s": median["zoo_fit"],
        "zuko_steps_per_s": median["zuko"],
        "ratio": median["zoo"] / median["zuko"],
        "ratio_fit": median["zoo_fit"] / median["zuko"],
        "target_ratio": 1.5,
        "rounds_steps_per_s": rates,
        "parameters": {"zoo": sum(p.numel() for p in ours.parameters()),
                       "zuko": sum(p.numel() for p in theirs.parameters())},
        "zuko_version": zuko.__version__,
        "machine": describe_machine(device),
    }
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
