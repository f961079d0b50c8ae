"""zoo against pytorch-generative at MNIST scale (issue 26, item 6), side by side.

Binarized MNIST (the ``binarized-mnist`` protocol: the training images drawn once with seed
0 for this benchmark, 28x28), batches of 128, Adam at lr 1e-3 on both sides, one thread,
rounds alternating between the models on the same batches (``bench_digits_peers.speed``):

- ``made``: zoo's MADE against pytorch-generative's, the same network (784-500-784, one
  random ordering, a Bernoulli logit per pixel);
- ``pixelcnn``: zoo's plain PixelCNN against pytorch-generative's at equal parameters (5
  residual blocks, a stream of 32 channels, a head of 32, one input channel: the CPU tier's
  network with pytorch-generative's input);
- ``sample``: 64 images from each PixelCNN: zoo's fast sampler against pytorch-generative's
  ``sample`` (one forward pass per pixel), best of ``--repeats``; and zoo's fast sampler
  against its naive one, which must give the same images.

    PG=../shared/peers/pytorch-generative
    python -m benchmarks.bench_mnist_peers made --pg-path $PG
    python -m benchmarks.bench_mnist_peers pixelcnn --pg-path $PG --steps 10
    python -m benchmarks.bench_mnist_peers sample --pg-path $PG

Needs MNIST under ``$ZOO_DATA`` (``MNIST/raw``). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

import zoo
from benchmarks import load_average
from benchmarks.bench_digits_peers import import_pg, speed

ZOO = {
    "zoo_made": ("made", {"shape": [1, 28, 28], "levels": 2, "hidden": [500],
                          "head": "bernoulli", "ordering": "random"}),
    "zoo_plain": ("pixelcnn", {"shape": [1, 28, 28], "levels": 2, "variant": "plain",
                               "channels": 32, "layers": 5, "first_kernel": 7,
                               "head_channels": 32, "inputs": "scaled"}),
}


def binarized_mnist(count: int | None = None) -> torch.Tensor:
    """The training images, each pixel drawn once as Bernoulli(grey / 255) with seed 0."""
    from zoo.data.builtin import load_binarized_mnist
    from zoo.paths import data_dir

    probs = load_binarized_mnist("train", data_dir())
    probs = probs if count is None else probs[:count]
    return torch.bernoulli(probs, generator=torch.Generator().manual_seed(0)).long()


def build(name: str, seed: int, pg: Any) -> tuple[torch.nn.Module, Callable[[torch.Tensor], torch.Tensor]]:
    """The model ``name`` and its per-image NLL ``[B]`` (differentiable)."""
    torch.manual_seed(seed)
    if name.startswith("pg_"):
        if pg is None:
            raise SystemExit(f"{name} needs --pg-path (a pytorch-generative checkout)")
        model = (pg.MADE(784, [500]) if name == "pg_made" else
                 pg.PixelCNN(in_channels=1, out_channels=1, n_residual=5, residual_channels=16,
                             head_channels=32))

        def nll(x: torch.Tensor) -> torch.Tensor:
            xf = x.float()
            logits = model(xf.view(len(xf), -1) if name == "pg_made" else xf)
            return F.binary_cross_entropy_with_logits(
                logits.view_as(xf), xf, reduction="none").flatten(1).sum(1)

        return model, nll
    family, config = ZOO[name]
    model = zoo.get_family(family).build(config)
    return model, lambda x: -model.log_prob(x)


def sampling(pg: Any, repeats: int) -> dict[str, Any]:
    """Seconds to draw 64 images: zoo fast, zoo naive, pytorch-generative (best of
    ``repeats``, naive and the peer once: each takes 784 forward passes)."""
    zoo_model, _ = build("zoo_plain", 0, pg)
    peer, _ = build("pg_pixelcnn", 0, pg)
    zoo_model.eval()
    peer.eval()

    def timed(draw: Callable[[], Any]) -> tuple[float, Any]:
        tic = time.perf_counter()
        out = draw()
        return time.perf_counter() - tic, out

    fast = [timed(lambda: zoo_model.sample(64, generator=torch.Generator().manual_seed(0)))
            for _ in range(repeats)]
    naive_s, naive = timed(lambda: zoo_model.sample_naive(
        64, generator=torch.Generator().manual_seed(0)))
    with torch.no_grad():
        # Its sampler fills the pixels below 0 of what it is given (it keeps no image size).
        peer_s, _ = timed(lambda: peer.sample(conditioned_on=-torch.ones(64, 1, 28, 28)))
    fast_s = min(t for t, _ in fast)
    return {"zoo_fast_s": round(fast_s, 4), "zoo_naive_s": round(naive_s, 3),
            "pg_s": round(peer_s, 3), "zoo_fast_vs_pg": round(peer_s / fast_s, 1),
            "zoo_fast_vs_naive": round(naive_s / fast_s, 1),
            "fast_equals_naive": bool(torch.equal(fast[0][1], naive)),
            "reference_steps": zoo_model.sampling_stats.get("reference_steps")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_mnist_peers")
    parser.add_argument("mode", choices=["made", "pixelcnn", "sample"])
    parser.add_argument("--pg-path", required=True,
                        help="pytorch-generative checkout (holds pytorch_generative/)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50, help="steps per round")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pg = import_pg(args.pg_path)
    if args.mode == "sample":
        record: dict[str, Any] = {"load_average": [load_average()]}
        record.update(sampling(pg, args.repeats))
        record["load_average"].append(load_average())
    else:
        names = ["pg_made", "zoo_made"] if args.mode == "made" else ["pg_pixelcnn", "zoo_plain"]
        record = speed(names, args.rounds, args.steps, pg, train=binarized_mnist(),
                       builder=build)
    record["benchmark"] = f"mnist_peers_{args.mode}"
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
