"""zoo's defaults on real tables against three baselines (issue 27).

    python -m benchmarks.bench_tables                 # every table below
    python -m benchmarks.bench_tables --only iris,engel --json

Each table ships inside scikit-learn's or statsmodels' package (no download). It is split
80/20 (seed 0) and written as train.csv / test.csv with its own values. zoo runs exactly what
a user runs: ``zoo train realnvp --data train.csv -o M`` with no options (in this process,
through ``zoo.api.owndata.train_to``), and its NLL is ``zoo eval M --data test.csv``. zoo finds
the columns on a grid (integers, fixed decimals) and dequantizes them with one step of
uniform noise; its NLL is then a bound, comparable with a density over bins of that width.

The baselines are fitted to the same training rows, with the same columns zoo modelled, and
every column on a grid gets uniform noise of one grid step, in train and test alike, so that
no method can gain by putting spikes on the grid:

- a full-covariance Gaussian (maximum likelihood);
- a Gaussian KDE, bandwidth by 5-fold cross-validation on standardized columns (on at
  most 4,000 training rows; the KDE then holds them all);
- zuko's NSF: 3 transforms, hidden (64, 64), 3,000 AdamW steps (lr 1e-3, cosine schedule,
  batches of 256), on standardized columns.

NLLs are nats per row on the original scale (the standardization's log-determinant added
back). One process, one torch thread. Needs the ``[bench]`` extra (zuko, statsmodels).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

NSF_STEPS = 3000
#: Rows the KDE's bandwidth search uses (all of them on tables up to this size).
KDE_CV_ROWS = 4000


def _sklearn(name: str) -> Callable[[], tuple[object, str]]:
    def load():
        import sklearn.datasets as d

        if name == "diabetes":
            bunch = d.load_diabetes(as_frame=True, scaled=False)
            frame = bunch.frame  # the ten measurements and the target, unscaled
        else:
            frame = getattr(d, f"load_{name}")(as_frame=True).frame
            frame = frame.drop(columns=[c for c in ("target",) if c in frame])
        return frame, f"scikit-learn {name}" + (" (unscaled, with target)"
                                                if name == "diabetes" else "")
    return load


def _statsmodels(name: str) -> Callable[[], tuple[object, str]]:
    def load():
        import statsmodels.api as sm

        return getattr(sm.datasets, name).load_pandas().data, f"statsmodels {name}"
    return load


TABLES: dict[str, Callable[[], tuple[object, str]]] = {
    "iris": _sklearn("iris"),
    "wine": _sklearn("wine"),
    "breast_cancer": _sklearn("breast_cancer"),
    "diabetes": _sklearn("diabetes"),
    "engel": _statsmodels("engel"),
    "cancer": _statsmodels("cancer"),
    "sunspots": _statsmodels("sunspots"),
    "macrodata": _statsmodels("macrodata"),
    "fair": _statsmodels("fair"),
    "randhie": _statsmodels("randhie"),
}


def split(frame, seed: int = 0):
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(frame))
    cut = int(round(0.8 * len(frame)))
    return frame.iloc[np.sort(order[:cut])], frame.iloc[np.sort(order[cut:])]


def gaussian(train: np.ndarray, test: np.ndarray) -> float:
    from zoo.data.columns import gaussian_nll

    return gaussian_nll(train, test)


def kde(train: np.ndarray, test: np.ndarray) -> float:
    from sklearn.model_selection import GridSearchCV
    from sklearn.neighbors import KernelDensity

    mean, std = train.mean(0), train.std(0)
    z_train, z_test = (train - mean) / std, (test - mean) / std
    search = GridSearchCV(KernelDensity(kernel="gaussian"),
                          {"bandwidth": np.logspace(-1.7, 0.3, 21)}, cv=5)
    # The bandwidth is chosen on at most KDE_CV_ROWS rows (the search costs n^2 per fold),
    # then the KDE holds every training row; with more rows the best bandwidth only shrinks,
    # so on the largest tables this flatters the KDE less than it handicaps it.
    pick = np.random.default_rng(0).permutation(len(z_train))[:KDE_CV_ROWS]
    search.fit(z_train[pick])
    model = KernelDensity(kernel="gaussian", bandwidth=search.best_params_["bandwidth"])
    model.fit(z_train)
    return float(-model.score_samples(z_test).mean() + np.log(std).sum())


def nsf(train: np.ndarray, test: np.ndarray, seed: int = 0) -> float:
    import torch
    import zuko

    torch.manual_seed(seed)
    mean, std = train.mean(0), train.std(0)
    z_train = torch.tensor((train - mean) / std, dtype=torch.float32)
    z_test = torch.tensor((test - mean) / std, dtype=torch.float32)
    flow = zuko.flows.NSF(features=train.shape[1], transforms=3, hidden_features=(64, 64))
    optimizer = torch.optim.AdamW(flow.parameters(), lr=1e-3)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, NSF_STEPS)
    generator = torch.Generator().manual_seed(seed)
    batch = min(256, len(z_train))
    for _ in range(NSF_STEPS):
        index = torch.randint(len(z_train), (batch,), generator=generator)
        loss = -flow().log_prob(z_train[index]).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    with torch.no_grad():
        nll = -flow().log_prob(z_test).mean().item()
    return nll + float(np.log(std).sum())


def run_table(name: str, workdir: Path) -> dict[str, object]:
    import zoo
    from zoo.api.owndata import train_to
    from zoo.api.scoring import evaluate_data
    from zoo.data.columns import grid_of, jittered
    from zoo.training.options import TrainOptions

    frame, origin = TABLES[name]()
    frame = frame.select_dtypes("number")
    train_frame, test_frame = split(frame)
    folder = workdir / name
    folder.mkdir()
    train_frame.to_csv(folder / "train.csv", index=False)
    test_frame.to_csv(folder / "test.csv", index=False)
    tic = time.perf_counter()
    model_dir = train_to("realnvp", str(folder / "train.csv"), folder / "model",
                         TrainOptions.of(progress=False))
    seconds = time.perf_counter() - tic
    model = zoo.load(model_dir)
    zoo_nll = evaluate_data(model, str(folder / "test.csv")).nll
    # The baselines see the columns zoo modelled (a row index would be left out), with noise
    # of one grid step on the columns on a grid.
    columns = model.artifact.source.get("columns") or list(frame.columns)
    train = train_frame[columns].to_numpy(np.float64)
    test = test_frame[columns].to_numpy(np.float64)
    grid = grid_of(train)
    rng = np.random.default_rng(1)
    train, test = jittered(train, grid, rng), jittered(test, grid, rng)
    row = {"table": name, "origin": origin, "rows": len(frame), "columns": len(columns),
           "grid_columns": sum(1 for s in grid if s > 0),
           "zoo": zoo_nll, "gaussian": gaussian(train, test), "kde": kde(train, test),
           "nsf": nsf(train, test), "zoo_seconds": seconds,
           "zoo_steps": model.artifact.recipe.get("steps") if model.artifact.recipe else None}
    return row


def _cell_of(best: float) -> Callable[[float], str]:
    """Format an NLL, in bold when it is the row's best."""
    return lambda v: f"**{v:.3f}**" if math.isclose(v, best) else f"{v:.3f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", help="comma-separated table names (default: all)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    names = args.only.split(",") if args.only else list(TABLES)
    unknown = [n for n in names if n not in TABLES]
    if unknown:
        parser.error(f"unknown table(s) {unknown}; choose from {list(TABLES)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            rows.append(run_table(name, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)  # progress, row by row
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print("| table | rows x cols | zoo | Gaussian | KDE | NSF | zoo's training time |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        best = min(r["zoo"], r["gaussian"], r["kde"], r["nsf"])
        cell = _cell_of(best)
        print(f"| {r['table']} ({r['origin']}) | {r['rows']} x {r['columns']} | {cell(r['zoo'])} "
              f"| {cell(r['gaussian'])} | {cell(r['kde'])} | {cell(r['nsf'])} "
              f"| {r['zoo_seconds']:.0f} s ({r['zoo_steps']} steps) |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
