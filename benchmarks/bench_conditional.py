"""Conditional models (issue 28), measured: on digits, the conditional against the
unconditional test NLL, ``zoo classify``'s test accuracy, and the share of 50 samples per
class that an independent classifier (logistic regression fitted on the digits training
split) assigns to the class they were drawn for; on a table whose true conditional is known,
``y | x ~ N(sin 3x, 0.1^2)``, the test NLL of ``--given x`` against the true conditional
entropy; and the time to sample 64 conditional PixelCNN images against unconditional ones.

    python -m benchmarks.bench_conditional [--families made pixelcnn realnvp]

One torch thread; prints one JSON object. Each family trains the catalog's digits config
and recipe (``FAMILY-digits``), with ``classes`` added for the conditional model.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np
import torch

import zoo
from benchmarks import load_average
from zoo import api
from zoo.api.conditioning import classify
from zoo.data.builtin import BUILTIN
from zoo.infer.evaluation import evaluate_on
from zoo.plugin.registry import get_family
from zoo.training.loop import maximise_likelihood

DIGITS = next(d for d in BUILTIN if d.name == "digits")
CLASSES = [str(d) for d in range(10)]


def trained(entry_name: str, conditional: bool) -> torch.nn.Module:
    entry = api.get_entry(entry_name)
    config = {**entry.config, **({"classes": CLASSES} if conditional else {})}
    torch.manual_seed(entry.recipe.seed)
    model = get_family(entry.family).build(config)
    maximise_likelihood(model, DIGITS, entry.recipe, progress=False)
    return model.eval()


def independent_share(model: torch.nn.Module, per_class: int = 50) -> float:
    """Share of samples drawn for class k that a logistic regression on the training split
    (pixels as features) assigns to k."""
    from sklearn.linear_model import LogisticRegression

    train = DIGITS.examples("train")
    x = train.tensor().reshape(len(train), -1).numpy()
    y = train.take_context(np.arange(len(train))).numpy()
    judge = LogisticRegression(max_iter=2000).fit(x, y)
    labels = torch.arange(10).repeat_interleave(per_class)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        samples = model.sample(len(labels), context=labels, generator=g)
    drawn = samples.reshape(len(samples), -1).numpy()
    return float((judge.predict(drawn) == labels.numpy()).mean())


def digits_rows(families: list[str]) -> list[dict]:
    test = DIGITS.examples("test")
    x = test.tensor()
    y = test.take_context(np.arange(len(test)))
    rows = []
    for family in families:
        entry = f"{family}-digits"
        tic = time.perf_counter()
        conditional = trained(entry, True)
        seconds = time.perf_counter() - tic
        plain = trained(entry, False)
        with torch.no_grad():
            result = classify(conditional, x, y)
        rows.append({
            "family": family,
            "test_nll_conditional": evaluate_on(conditional, test).nll,
            "test_nll_marginal": evaluate_on(conditional, test.without_context()).nll,
            "test_nll_unconditional": evaluate_on(plain, test).nll,
            "classify_accuracy": result.accuracy,
            "independent_classifier_share": independent_share(conditional),
            "train_seconds_conditional": seconds,
        })
    return rows


def sine_table() -> dict:
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 4000).astype(np.float32)
    y = (np.sin(3 * x) + 0.1 * rng.normal(size=4000)).astype(np.float32)
    model = zoo.fit("realnvp", y[:3000, None], context=x[:3000, None])
    with torch.no_grad():
        nll = -model.log_prob(torch.as_tensor(y[3000:, None]),
                              context=torch.as_tensor(x[3000:, None])).mean().item()
    return {"test_nll_given_x": nll,
            "true_conditional_entropy": 0.5 * math.log(2 * math.pi * math.e * 0.01)}


def sampling_times() -> dict:
    entry = api.get_entry("pixelcnn-digits")
    out = {}
    for name, extra in (("unconditional", {}), ("conditional", {"classes": CLASSES})):
        model = get_family("pixelcnn").build({**entry.config, **extra}).eval()
        context = {} if not extra else {"context": 3}
        best = math.inf
        for _ in range(3):
            tic = time.perf_counter()
            model.sample(64, generator=torch.Generator().manual_seed(0), **context)
            best = min(best, time.perf_counter() - tic)
        out[f"sample_64_{name}_s"] = best
    out["ratio"] = out["sample_64_conditional_s"] / out["sample_64_unconditional_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["made", "pixelcnn", "realnvp"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    report: dict = {"load_average_start": load_average()}
    for key, part in (("sine_table", sine_table), ("pixelcnn_sampling", sampling_times),
                      ("digits", lambda: digits_rows(args.families))):
        report[key] = part()
        print(json.dumps({key: report[key]}), file=sys.stderr)  # each part as it is done
    report["load_average_end"] = load_average()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
