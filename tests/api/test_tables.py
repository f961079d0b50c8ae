"""Tables as people have them (issue 27, and issue 24 items 11-12): column choice, missing
values, row indices, constant columns, grids, standardization, the Gaussian baseline."""

from __future__ import annotations

import json
import math
import re
import tracemalloc

import numpy as np
import pytest
import torch

import zoo
from zoo.cli.commands import cli
from zoo.data.columns import ColumnChoice, choose, gaussian_nll, grid_of, read_csv, table_budget
from zoo.data.tabular import read_table
from zoo.errors import DataError

QUICK = ["--steps", "3", "-c", "couplings=2", "-c", "hidden=4", "--batch-size", "16", "-q"]


def table_text(n: int = 40, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    rows = [f"{a:.6f},{b:.6f},{int(c)}" for a, b, c in
            zip(rng.normal(size=n), rng.normal(size=n), rng.integers(0, 5, n))]
    return "x,y,k\n" + "\n".join(rows) + "\n"


def refused(result, pattern: str, out=None) -> None:
    assert result.exit_code != 0, result.output
    text = result.output.strip()
    assert "Traceback" not in text and len(text.splitlines()) == 1, text
    assert re.search(pattern, text), text
    if out is not None:
        assert not out.exists()


def train(cli_runner, tmp_path, text: str, *extra: str):
    data = tmp_path / "t.csv"
    data.write_text(text)
    out = tmp_path / "m"
    result = cli_runner.invoke(cli, ["train", "realnvp", "--data", str(data), "-o", str(out),
                                     *QUICK, *extra])
    return result, out


# --- issue 24, items 11-12 -------------------------------------------------------------------

def test_a_byte_order_mark_without_a_header_keeps_every_row(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeff1.5,2\n3,4\n5,6\n7,8\n".encode())
    source = read_csv(path)
    assert len(source) == 4 and source.columns is None
    assert source.take([0]).tolist() == [[1.5, 2.0]]


def test_reading_a_csv_costs_a_few_times_its_size_not_sixteen(tmp_path):
    path = tmp_path / "big.csv"
    rng = np.random.default_rng(0)
    np.savetxt(path, rng.normal(size=(40_000, 5)), fmt="%.5f", delimiter=",")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        read_csv(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * size, (peak, size)


# --- reading and choosing columns ----------------------------------------------------------

def test_missing_values_are_refused_by_row_and_column_and_can_be_dropped(tmp_path, cli_runner):
    text = "x,y\n1,2\n3,4\n5,NA\n,8\n9,10\n11,12.5\n13,1\n"
    result, out = train(cli_runner, tmp_path, text)
    refused(result, r"t.csv: row 2, column 1 \('y'\): NA is a missing value .*--drop-missing", out)
    result, out = train(cli_runner, tmp_path, text, "--drop-missing")
    assert result.exit_code == 0, result.output
    assert "dropped 2 row(s) with a missing value (5 left)" in result.output
    assert json.loads((out / "config.json").read_text())["source"]["examples"] == 5


def test_a_non_numeric_column_is_named_and_can_be_left_out(tmp_path, cli_runner):
    rng = np.random.default_rng(1)
    lines = [f"{a:.4f},{b:.4f},{'abc'[i % 3]}" for i, (a, b) in
             enumerate(rng.normal(size=(30, 2)))]
    text = "x,y,kind\n" + "\n".join(lines) + "\n"
    result, out = train(cli_runner, tmp_path, text)
    refused(result, r"column 2 \('kind'\): 'a' is not a number; the column is not numeric", out)
    result, out = train(cli_runner, tmp_path, text, "--drop-columns", "kind")
    assert result.exit_code == 0, result.output
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["source"]["columns"] == ["x", "y"] and cfg["config"]["shape"] == [2]
    # Scoring applies the recorded choice: the text column of the scored file is left out.
    scored = cli_runner.invoke(cli, ["score", str(out), "--data", str(tmp_path / "t.csv")])
    assert scored.exit_code == 0, scored.output
    plain = tmp_path / "xy.csv"
    plain.write_text("y,x\n" + "\n".join(f"{ln.split(',')[1]},{ln.split(',')[0]}"
                                         for ln in lines) + "\n")
    same = zoo.score(zoo.load(out), str(plain))
    assert torch.allclose(same, zoo.score(zoo.load(out), str(tmp_path / "t.csv")))


def test_columns_chooses_and_orders(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(table_text())
    chosen = choose(read_table(path), ColumnChoice.parse("k,x"))
    assert chosen.columns == ["k", "x"] and chosen.source.shape == (2,)
    with pytest.raises(DataError, match=r"--columns 'z': no such column; the columns are 'x'"):
        choose(read_table(path), ColumnChoice.parse("z"))


def test_a_row_index_column_is_left_out_with_a_warning(tmp_path, cli_runner):
    body = table_text().splitlines()[1:]
    text = "rownames,x,y,k\n" + "\n".join(f"{i + 1},{row}" for i, row in enumerate(body)) + "\n"
    result, out = train(cli_runner, tmp_path, text)
    assert result.exit_code == 0, result.output
    assert "column 0 ('rownames') looks like a row index" in result.output
    assert json.loads((out / "config.json").read_text())["source"]["columns"] == ["x", "y", "k"]
    # Unnamed but numbered 0..n-1 in order, and kept when --columns names it.
    path = tmp_path / "u.csv"
    path.write_text("a,x,y,k\n" + "\n".join(f"{i},{row}" for i, row in enumerate(body)) + "\n")
    assert "0..39 in order" in choose(read_table(path), training=True).notes[0]
    kept = choose(read_table(path), ColumnChoice.parse("a,x"), training=True)
    assert kept.columns == ["a", "x"] and not kept.notes


BAD_TABLES = {
    "constant": ("x,y,c\n1,2,7\n3,5,7\n4,1,7\n", r"column 2 \('c'\) is constant .*every row is 7"),
    "all-constant": ("x,y\n1,2\n1,2\n1,2\n", r"every column is constant"),
    "single-row": ("x,y\n1,2\n", r"a single row"),
    "fewer-rows": ("a,b,c,d\n1,2,3,4\n2,3,1,5\n", r"2 rows but 4 columns"),
    "duplicate-header": ("x,y,x\n1,2,3\n", r"the header names column 'x' twice \(columns 0 and 2\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_tables_no_density_fits_are_refused_in_one_line(tmp_path, cli_runner, case):
    text, pattern = BAD_TABLES[case]
    result, out = train(cli_runner, tmp_path, text)
    refused(result, pattern, out)


# --- grids and standardization -------------------------------------------------------------

def test_grid_steps_are_read_off_the_values():
    values = np.array([[1.0, 0.25, 0.123456], [3.0, 1.5, 2.5], [7.0, 2.0, 1.0]])
    assert grid_of(values) == [1.0, 0.01, 0.0]
    assert grid_of(np.array([[4.0], [4.0]])) == [0.0]  # constant: no grid


def test_grid_columns_are_recorded_dequantized_and_called_a_bound(tmp_path, cli_runner):
    result, out = train(cli_runner, tmp_path, table_text())
    assert result.exit_code == 0, result.output
    assert "'k' step 1" in result.output
    cfg = json.loads((out / "config.json").read_text())["config"]
    assert cfg["grid"] == [0.0, 0.0, 1.0] and cfg["standardize"] is True
    model = zoo.load(out)
    assert model.likelihood_bound
    samples = model.sample(50, generator=torch.Generator().manual_seed(0))
    assert torch.equal(samples[:, 2], samples[:, 2].round())  # drawn on the grid
    x = torch.tensor([[0.1, 0.2, 3.0]]).repeat(400, 1)
    noisy = model.log_likelihood(x, generator=torch.Generator().manual_seed(0))
    assert noisy.std() > 0  # the grid column is dequantized, the others are not
    sampled = cli_runner.invoke(cli, ["sample", str(out), "-n", "5", "-o", str(tmp_path / "s.csv")])
    assert sampled.exit_code == 0, sampled.output
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0] == "x,y,k" and len(lines) == 6  # the training table's column names
    evaluated = cli_runner.invoke(cli, ["eval", str(out), "--data", str(tmp_path / "t.csv")])
    assert evaluated.exit_code == 0, evaluated.output
    assert "≤" in evaluated.output and "columns on a grid: 'k' (step 1)" in evaluated.output


def test_the_standardizing_layer_keeps_densities_on_the_users_scale():
    family = zoo.get_family("realnvp")
    plain = family.build({"shape": [3], "couplings": 2, "hidden": 8})
    scaled = family.build({"shape": [3], "couplings": 2, "hidden": 8, "standardize": True})
    scaled.nets.load_state_dict(plain.nets.state_dict())
    mean, std = torch.tensor([100.0, -3.0, 0.5]), torch.tensor([50.0, 0.1, 2.0])
    scaled.set_standardization(mean, std)
    x = torch.randn(5, 3) * std + mean
    expected = plain.log_prob((x - mean) / std) - std.log().sum()
    assert torch.allclose(scaled.log_prob(x), expected, atol=1e-4)
    draws = scaled.sample(2000, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(draws.mean(0), mean, atol=0.2 * float(std.max()))


def test_vector_configs_without_the_table_keys_are_stored_as_before():
    family = zoo.get_family("realnvp")
    stored = family.config_dict(family.parse_config({"shape": [2]}))
    assert "standardize" not in stored and "grid" not in stored
    old = family.parse_stored_config({k: v for k, v in stored.items()})
    assert old.standardize is False and old.grid is None


# --- the baseline and the budget ----------------------------------------------------------

def test_training_prints_and_records_the_gaussian_baseline(tmp_path, cli_runner):
    rng = np.random.default_rng(2)
    text = "x,y\n" + "\n".join(f"{a:.5f},{b:.5f}" for a, b in rng.normal(size=(60, 2))) + "\n"
    result, out = train(cli_runner, tmp_path, text)
    assert result.exit_code == 0, result.output
    assert "a full-covariance Gaussian fitted to the same training rows" in result.output
    # Three steps on Gaussian data: the model loses, and says so with what to try.
    assert "the model does not beat the Gaussian on this data: try" in result.output
    metrics = json.loads((out / "config.json").read_text())["metrics"]
    assert math.isfinite(metrics["val_gaussian_nll"])
    card = (out / "README.md").read_text()
    assert "full-covariance Gaussian's NLL" in card and "does not beat" in card


def test_gaussian_nll_matches_the_closed_form():
    rng = np.random.default_rng(0)
    train = rng.normal(size=(5000, 2)) * [2.0, 0.5]
    test = rng.normal(size=(5000, 2)) * [2.0, 0.5]
    expected = 2 * 0.5 * (1 + math.log(2 * math.pi)) + math.log(2.0) + math.log(0.5)
    assert abs(gaussian_nll(train, test) - expected) < 0.05


def test_the_budget_follows_the_rows():
    small, large = table_budget(200), table_budget(100_000)
    assert small["batch_size"] < large["batch_size"]
    assert small["val_fraction"] > large["val_fraction"]
    assert small["steps"] * small["batch_size"] / 160 > large["steps"] * large["batch_size"] / 90_000
    assert small["warmup_steps"] < small["steps"] and small["patience"]


def test_early_stopping_ends_the_run_after_patience_passes(monkeypatch):
    import zoo.training.loop as training
    from zoo.catalog.recipe import Recipe
    from zoo.data.source import Examples, TensorSource

    monkeypatch.setattr(training, "mean_nll_across_ranks", lambda *a, **k: 1.0)
    model = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    recipe = Recipe(steps=200, batch_size=8, eval_every=5, patience=3, val_fraction=0.2)
    data = Examples(TensorSource(torch.randn(64, 2), "t"), "continuous")
    result = training.maximise_likelihood(model, data, recipe, progress=False)
    assert result.steps == 20 and result.best_step == 5


def test_workers_of_a_several_process_run_choose_the_same_columns(tmp_path):
    from pathlib import Path

    from zoo.api.owndata import data_train_command
    from zoo.training.options import TrainOptions

    args = data_train_command("realnvp", str(tmp_path / "t.csv"), Path(tmp_path / "m"),
                              TrainOptions(), columns=ColumnChoice.parse("a,b", "c", True))
    assert args[args.index("--columns") + 1] == "a,b"
    assert args[args.index("--drop-columns") + 1] == "c" and "--drop-missing" in args


def test_a_catalog_entry_keeps_its_levels_when_the_data_fits_them(tmp_path):
    from zoo.api.owndata import plan

    digits = np.random.default_rng(0).integers(0, 17, (20, 8, 8)).astype(np.uint8)
    kept = plan("pixelcnn-digits", digits)
    assert kept.config.levels == 17 and "pixelcnn-digits's levels, which the data fits" in kept.note
    wide = plan("pixelcnn-digits", np.full((20, 8, 8), 200, dtype=np.uint8))
    assert wide.config.levels == 201 and "levels 201 replaces it" in wide.note


def test_auroc_is_the_share_of_pairs_the_reference_wins():
    from zoo.api.scoring import auroc

    reference, scores = torch.tensor([3.0, 2.0, 5.0]), torch.tensor([1.0, 2.0])
    # Pairs the reference wins: 3>1, 3>2, 2>1, 5>1, 5>2 (5), one tie 2=2 (half): 5.5 of 6.
    assert auroc(reference, scores) == pytest.approx(5.5 / 6)
    assert auroc(scores, reference) == pytest.approx(0.5 / 6)


def test_score_with_a_reference_prints_the_auroc(tmp_path, cli_runner):
    result, out = train(cli_runner, tmp_path, table_text())
    assert result.exit_code == 0, result.output
    far = tmp_path / "far.csv"
    far.write_text("x,y,k\n" + "\n".join(f"{40 + i},{-30 - i},{i % 5}" for i in range(20)) + "\n")
    scored = cli_runner.invoke(cli, ["score", str(out), "--data", str(far), "--reference",
                                     str(tmp_path / "t.csv"), "-o", str(tmp_path / "s.csv")])
    assert scored.exit_code == 0, scored.output
    assert re.search(r"AUROC 1\.0000 of 20 scored examples against 40 reference", scored.output)


def test_the_standardizing_layer_is_set_from_the_training_rows_and_stays(tmp_path):
    from zoo.api.owndata import plan, train_plan
    from zoo.training.loop import split_train

    path = tmp_path / "t.csv"
    path.write_text(table_text(80))
    p = plan("realnvp", str(path), config={"couplings": 2, "hidden": 4}, steps=20)
    rows = split_train(p.examples, p.recipe).train.tensor().double()
    model = train_plan(p, progress=False)
    assert torch.allclose(model.shift.double(), rows.mean(0), atol=1e-5)
    assert not model.shift.requires_grad and not model.log_scale.requires_grad
