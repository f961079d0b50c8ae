"""The reverse check on the catalog's flows (issue 29): both directions, in nats.

For each entry (pulled, or built from its recipe, into ``$ZOO_HOME``), the test NLL
(forward) and ``zoo.infer.reverse.check_dataset`` of 20,000 samples (reverse): on moons the
exact ``-log p_true`` of the samples (floor: the entropy, 1.009), on images the model's
own NLL of its samples (a dequantized bound, like the test NLL). A reverse well above the
forward means mass where the data is not.

    python -m benchmarks.bench_reverse [ENTRY ...] [--samples 20000] [--seed 0]

Without entries: the flows that build on a CPU in minutes (realnvp-moons, realnvp-digits).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch

from benchmarks import load_average
from zoo import api
from zoo.infer.reverse import check_dataset

DEFAULT = ["realnvp-moons", "realnvp-digits"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_reverse")
    parser.add_argument("entries", nargs="*", default=DEFAULT)
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    for name in args.entries:
        model = api.load(name)
        start = time.perf_counter()
        check = check_dataset(model, api.get_dataset(api.get_entry(name).dataset), n=args.samples,
                              seed=args.seed)
        print(json.dumps({"benchmark": "reverse", "entry": name} | {
            k: round(v, 4) if isinstance(v, float) else v for k, v in check.as_dict().items()}
            | {"seconds": round(time.perf_counter() - start, 1),
               "load_average": load_average()}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
