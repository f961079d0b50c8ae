"""Our multi-scale image RealNVP against normflows' closest image flow: training steps/s.

Protocol: sklearn's 8x8 digits (the training split), uniformly dequantized and scaled to
[0, 1), batches of 64, one CPU thread (``--threads``), AdamW for both; rounds alternate
between the two models so that both see the same machine load; the record gives medians.

- ``zoo``: ``realnvp-digits``' config (2 scales: 3 checkerboard couplings, squeeze, 3
  channel-wise couplings, half factored out, 4 checkerboard couplings; ResNets of 1 block,
  16 channels), scored through ``log_likelihood`` (dequantization and logit included).
- ``normflows``: ``nf.MultiscaleFlow`` with 2 levels of 5 ``AffineCouplingBlock``s
  (alternating checkerboard and channel masks, exp scale), each conditioned by a
  ``ConvNet2d`` of two hidden 3x3 layers of 16 channels, a squeeze per level and a merge:
  normflows' Glow-style multi-scale layout (squeeze first), the closest it ships to
  Dinh et al.'s RealNVP; same number of couplings, comparable parameter count (printed).
  zuko has no image flow (its couplings are MLPs on vectors), so it is not compared.

    python -m benchmarks.bench_realnvp_images [--rounds 5 --steps 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import torch

import zoo
from zoo.plugin.registry import get_dataset

BATCH, HIDDEN = 64, 16
CONFIG = {"shape": [1, 8, 8], "levels": 17, "scales": 2, "blocks": 1, "hidden": HIDDEN}


def zoo_step_fn(data: torch.Tensor) -> tuple[Any, int]:
    torch.manual_seed(0)
    model = zoo.get_family("realnvp").build(CONFIG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step(i: int) -> None:
        batch = data[(i * BATCH) % (len(data) - BATCH):][:BATCH]
        loss = -model.log_likelihood(batch).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def normflows_step_fn(data: torch.Tensor) -> tuple[Any, int] | None:
    try:
        import normflows as nf
    except ImportError:
        return None
    torch.manual_seed(0)
    levels, per_level, channels = 2, 5, 1
    flows, merges, q0 = [], [], []
    for i in range(levels):
        c = channels * 2 ** (levels + 1 - i)
        blocks = []
        for j in range(per_level):
            mode = "checkerboard" if j % 2 == 0 else "channel"
            # normflows' checkerboard split keeps all channels at half the width; its
            # channel split keeps half the channels at full size.
            c_in = c if mode == "checkerboard" else c // 2
            net = nf.nets.ConvNet2d([c_in, HIDDEN, HIDDEN, 2 * c_in], kernel_size=[3, 1, 3],
                                    init_zeros=True)
            blocks.append(nf.flows.AffineCouplingBlock(net, split_mode=mode))
        flows.append(blocks + [nf.flows.Squeeze()])
        if i > 0:
            merges.append(nf.flows.Merge())
            shape = (channels * 2 ** (levels - i), 8 // 2 ** (levels - i), 8 // 2 ** (levels - i))
        else:
            shape = (channels * 2 ** (levels + 1), 8 // 2 ** levels, 8 // 2 ** levels)
        q0.append(nf.distributions.DiagGaussian(shape))
    model = nf.MultiscaleFlow(q0, flows, merges, class_cond=False)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaled = data.float() / 17.0

    def step(i: int) -> None:
        batch = scaled[(i * BATCH) % (len(data) - BATCH):][:BATCH]
        x = batch + torch.rand_like(batch) / 17.0  # uniform dequantization in [0, 1)
        loss = -model.log_prob(x, None).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step, sum(p.numel() for p in model.parameters())


def rate(step: Any, steps: int) -> float:
    step(0)  # warm-up
    start = time.perf_counter()
    for i in range(1, steps + 1):
        step(i)
    return steps / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    data = get_dataset("digits").load("train")
    ours, ours_params = zoo_step_fn(data)
    theirs = normflows_step_fn(data)
    rates: dict[str, list[float]] = {"zoo": [], "normflows": []}
    for _ in range(args.rounds):
        rates["zoo"].append(rate(ours, args.steps))
        if theirs is not None:
            rates["normflows"].append(rate(theirs[0], args.steps))
    record: dict[str, Any] = {
        "benchmark": "realnvp_images", "batch": BATCH, "threads": args.threads,
        "rounds": args.rounds, "steps": args.steps,
        "zoo_steps_per_s": statistics.median(rates["zoo"]), "zoo_params": ours_params,
    }
    if theirs is not None:
        record["normflows_steps_per_s"] = statistics.median(rates["normflows"])
        record["normflows_params"] = theirs[1]
        record["ratio"] = record["zoo_steps_per_s"] / record["normflows_steps_per_s"]
    else:
        record["normflows"] = "not installed"
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
