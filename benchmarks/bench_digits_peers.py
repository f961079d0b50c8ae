"""zoo's autoregressive models against pytorch-generative's on binarized 8x8 digits, side by side.

Protocol (the issue "Ahead of the peers on their own ground"): sklearn's digits thresholded at
8 (pixel > 7 is 1), a fixed permutation (seed 0) into 1437 training and 360 test images,
batches of 128 drawn as epoch permutations from a fixed generator, Adam (PyTorch's default
implementation) at lr 1e-3 on both sides, one thread. Losses are per-image NLL in nats (sum
over the 64 pixels): ``-log_prob`` for zoo, Bernoulli cross-entropy of the logits for
pytorch-generative.

- ``speed``: training steps/s; rounds alternate between the models (the order reversed every
  round) on the same batches; the ratio is the median over rounds of the per-round ratio;
- ``nll``: test NLL at the best of the evaluations every ``--eval-every`` steps, per seed.

pytorch-generative is not on the package index: pass a checkout of it with ``--pg-path`` (its
package directory's parent) to put it on the side; without it only zoo's models run.

    PG=../shared/peers/pytorch-generative
    python -m benchmarks.bench_digits_peers speed pg_made zoo_made --pg-path $PG
    python -m benchmarks.bench_digits_peers speed pg_pixelcnn zoo_plain zoo_gated --steps 20 --pg-path $PG
    python -m benchmarks.bench_digits_peers nll pg_made zoo_made --seeds 0 1 --pg-path $PG
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from benchmarks import load_average

BATCH, LR = 128, 1e-3

#: zoo's models. Matched parameter counts: zoo_made and pg_made 66,112 weights and biases
#: (zoo_made's one mask keeps 33,344 of them as parameters, the masked-out half is not held;
#: pytorch-generative holds and zeroes it); zoo_plain16 16,354 and pg_pixelcnn 16,257;
#: zoo_gated12 39,466 and zoo_plain 39,842 (gated against plain).
ZOO_CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    # pytorch-generative's MADE draws its one ordering at random: so does zoo_made.
    "zoo_made": ("made", {"shape": [1, 8, 8], "levels": 2, "hidden": [512], "head": "bernoulli",
                          "ordering": "random"}),
    "zoo_made_natural": ("made", {"shape": [1, 8, 8], "levels": 2, "hidden": [512],
                                  "head": "bernoulli"}),
    "zoo_made_softmax": ("made", {"shape": [1, 8, 8], "levels": 2, "hidden": [512],
                                  "head": "categorical"}),
    "zoo_plain": ("pixelcnn", {"shape": [1, 8, 8], "levels": 2, "variant": "plain", "channels": 32,
                               "layers": 4, "head_channels": 32}),
    "zoo_plain16": ("pixelcnn", {"shape": [1, 8, 8], "levels": 2, "variant": "plain",
                                 "channels": 16, "layers": 4, "head_channels": 16}),
    "zoo_gated": ("pixelcnn", {"shape": [1, 8, 8], "levels": 2, "variant": "gated", "channels": 32,
                               "layers": 4, "head_channels": 32}),
    "zoo_gated12": ("pixelcnn", {"shape": [1, 8, 8], "levels": 2, "variant": "gated",
                                 "channels": 12, "layers": 4, "head_channels": 16}),
}


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    x = torch.as_tensor(load_digits().images, dtype=torch.int64)
    x = (x > 7).long().unsqueeze(1)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    return x[order[:1437]], x[order[1437:]]


def batch_indices(n: int, steps: int, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    out: list[torch.Tensor] = []
    while len(out) < steps:
        order = torch.randperm(n, generator=generator)
        out += [order[i:i + BATCH] for i in range(0, n - BATCH + 1, BATCH)]
    return out[:steps]


def import_pg(path: str) -> Any:
    """pytorch-generative's models; its package imports tensorboard, which is not needed."""
    sys.path.insert(0, os.path.abspath(path))

    stub = types.ModuleType("torch.utils.tensorboard")
    stub.SummaryWriter = None  # type: ignore[attr-defined]
    sys.modules.setdefault("torch.utils.tensorboard", stub)
    from pytorch_generative import models

    return models


def build(name: str, seed: int, pg: Any) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The model ``name`` and its per-image NLL ``[B]`` (differentiable)."""
    torch.manual_seed(seed)
    if name.startswith("pg_"):
        if pg is None:
            raise SystemExit(f"{name} needs --pg-path (a pytorch-generative checkout)")
        if name == "pg_made":
            model = pg.MADE(64, [512])
        else:  # stream 2*16 = 32 channels, bottleneck 16, head 32
            model = pg.PixelCNN(in_channels=1, out_channels=1, n_residual=4, residual_channels=16,
                                head_channels=32)

        def nll(x: torch.Tensor) -> torch.Tensor:
            xf = x.float()
            return F.binary_cross_entropy_with_logits(model(xf), xf, reduction="none").flatten(1).sum(1)

        return model, nll
    family, config = ZOO_CONFIGS[name]
    model = zoo.get_family(family).build(config)
    return model, lambda x: -model.log_prob(x)


def speed(names: list[str], rounds: int, steps: int, pg: Any, *,
          train: torch.Tensor | None = None,
          builder: Callable[..., Any] | None = None) -> dict[str, Any]:
    """Steps/s of each model on the same batches of ``train`` (default: binarized digits),
    alternating rounds; ``builder(name, seed, pg)`` makes a model and its NLL (``build``)."""
    train = digits()[0] if train is None else train
    builder = builder or build
    batches = batch_indices(len(train), rounds * steps + 10)
    state = {}
    for name in names:
        model, nll = builder(name, 0, pg)
        model.train()
        state[name] = (model, nll, torch.optim.Adam(model.parameters(), lr=LR))

    def run(name: str, chunk: list[torch.Tensor]) -> float:
        model, nll, optimizer = state[name]
        tic = time.perf_counter()
        for index in chunk:
            loss = nll(train[index]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return len(chunk) / (time.perf_counter() - tic)

    for name in names:
        run(name, batches[:10])
    rates: dict[str, list[float]] = {name: [] for name in names}
    load_before = load_average()
    for r in range(rounds):
        chunk = batches[10 + r * steps: 10 + (r + 1) * steps]
        for name in names if r % 2 == 0 else names[::-1]:
            rates[name].append(run(name, chunk))
    base = names[0]
    return {
        "protocol": {"rounds": rounds, "steps_per_round": steps, "batch_size": BATCH,
                     "optimizer": f"Adam lr {LR} (default implementation)", "threads": 1},
        "steps_per_s": {n: round(statistics.median(v), 1) for n, v in rates.items()},
        "params": {n: sum(p.numel() for p in state[n][0].parameters()) for n in names},
        "ratios": {f"{n}/{base}": round(statistics.median(a / b for a, b in zip(rates[n], rates[base])), 3)
                   for n in names[1:]},
        "load_average": [load_before, load_average()],
    }


def best_nll(names: list[str], seeds: list[int], steps: int, eval_every: int, pg: Any) -> dict[str, Any]:
    train, test = digits()
    out: dict[str, Any] = {}
    for name in names:
        for seed in seeds:
            model, nll = build(name, seed, pg)
            optimizer = torch.optim.Adam(model.parameters(), lr=LR)
            best, best_step = float("inf"), 0
            for step, index in enumerate(batch_indices(len(train), steps, seed), start=1):
                model.train()
                loss = nll(train[index]).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if step % eval_every == 0:
                    model.eval()
                    with torch.no_grad():
                        value = nll(test).double().mean().item()
                    if value < best:
                        best, best_step = value, step
            out[f"{name} seed {seed}"] = {"best_test_nll": round(best, 3), "step": best_step}
    return {"protocol": {"steps": steps, "eval_every": eval_every, "batch_size": BATCH,
                         "optimizer": f"Adam lr {LR}"}, "results": out}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_digits_peers")
    parser.add_argument("mode", choices=["speed", "nll"])
    parser.add_argument("names", nargs="+", help=f"pg_made, pg_pixelcnn, {', '.join(ZOO_CONFIGS)}")
    parser.add_argument("--pg-path", help="pytorch-generative checkout (holds pytorch_generative/)")
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--steps", type=int, default=100, help="speed: steps per round; nll: steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--eval-every", type=int, default=100)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pg = import_pg(args.pg_path) if args.pg_path else None
    if args.mode == "speed":
        record = speed(args.names, args.rounds, args.steps, pg)
    else:
        record = best_nll(args.names, args.seeds, args.steps, args.eval_every, pg)
    record["benchmark"] = f"digits_peers_{args.mode}"
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
