"""One table: NLL columns in `zoo list`, `zoo leaderboard`, and bounds marked with "≤"."""

import json

import pytest
from cli_run import run

CATALOG = """
version: 1
entries:
  - name: realnvp-imgtiny
    family: realnvp
    dataset: digits
    description: a tiny image flow, dequantized
    config: {shape: [1, 8, 8], levels: 17, hidden: 4, blocks: 1, scales: 1}
    recipe: {steps: 5, batch_size: 32, eval_every: 5, val_fraction: 0.05}
  - name: made-expected
    family: made
    dataset: digits
    description: only expected
    config: {shape: [1, 8, 8], levels: 17}
    recipe: {steps: 5}
    metrics: {test_nll: 91.0}
  - name: pixelcnn-unscored
    family: pixelcnn
    dataset: digits
    description: no number anywhere
    config: {shape: [1, 8, 8], levels: 17}
    recipe: {steps: 5}
  - name: realnvp-tiny
    family: realnvp
    dataset: moons
    description: a vector flow
    config: {shape: [2], couplings: 2, hidden: 8}
    recipe: {steps: 5, batch_size: 64, eval_every: 5}
    metrics: {test_nll: 2.5}
"""


@pytest.fixture
def pulled(registry_file, cli_runner):
    registry_file(CATALOG)
    run(cli_runner, "pull", "realnvp-imgtiny", "-q")
    return cli_runner


def test_leaderboard_ranks_measured_and_expected_and_marks_bounds(pulled):
    rows = json.loads(run(pulled, "leaderboard", "digits", "--json").output)
    by_name = {r["name"]: r for r in rows}
    assert set(by_name) == {"realnvp-imgtiny", "made-expected", "pixelcnn-unscored"}
    tiny, made, unscored = (by_name[n] for n in ("realnvp-imgtiny", "made-expected",
                                                  "pixelcnn-unscored"))
    assert tiny["source"] == "measured" and tiny["bound"] is True and tiny["pulled"] is True
    assert made["source"] == "expected" and made["bound"] is False
    assert abs(made["bits_per_dim"] - 91.0 / (64 * 0.6931471805599453)) < 1e-9
    assert unscored["test_nll"] is None and unscored["rank"] is None and rows[-1] == unscored
    # Ranked by NLL in the same units: the untrained flow is far worse than 91 nats.
    assert tiny["test_nll"] > 91 and (made["rank"], tiny["rank"]) == (1, 2)
    text = run(pulled, "leaderboard", "digits").output
    assert "≤ " in text and "expected" in text and "D = 64" in text
    everything = json.loads(run(pulled, "leaderboard", "--json").output)
    assert {r["dataset"] for r in everything} == {"digits", "moons"}


def test_list_shows_measured_expected_and_bounds(pulled):
    rows = {r["name"]: r for r in json.loads(run(pulled, "list", "--json").output)}
    assert rows["realnvp-imgtiny"]["nll_source"] == "measured"
    assert rows["realnvp-imgtiny"]["nll_bound"] is True
    assert rows["made-expected"]["nll_source"] == "expected"
    assert rows["made-expected"]["test_nll"] == 91.0
    text = run(pulled, "list").output
    line = next(x for x in text.splitlines() if "realnvp-imgtiny" in x)
    assert line.startswith("*") and "≤ " in line
    assert "(91.00)" in next(x for x in text.splitlines() if "made-expected" in x)
    assert "expected by the catalog, not measured" in text


def test_eval_info_and_card_mark_the_bound(pulled, isolated_home):
    text = run(pulled, "eval", "realnvp-imgtiny").output
    assert "NLL    ≤ " in text and "bits/dim    ≤ " in text and "upper bound" in text
    one = json.loads(run(pulled, "eval", "realnvp-imgtiny", "--json").output)
    two = json.loads(run(pulled, "eval", "realnvp-imgtiny", "--json", "--samples", "4").output)
    assert one["bound"] is True and one["samples"] == 1 and two["samples"] == 4
    assert two["nll"] < one["nll"]  # the importance-weighted bound is tighter
    info = run(pulled, "info", "realnvp-imgtiny").output
    assert "test_nll" in info and "≤ " in info and "upper bound" in info
    card = (isolated_home / "models" / "realnvp-imgtiny" / "README.md").read_text()
    assert "| NLL (nats per example) | ≤ " in card and "upper bounds (≤)" in card
    assert "log_likelihood" in card
    exact = run(pulled, "eval", "realnvp-tiny").output
    assert "≤" not in exact
    assert "apply to dequantized models" in run(pulled, "eval", "realnvp-tiny", "--samples",
                                                "2", code=1).output


def test_image_samples_become_a_grid_of_levels(pulled, tmp_path):
    from PIL import Image

    png = tmp_path / "grid.png"
    run(pulled, "sample", "realnvp-imgtiny", "-n", "16", "-o", str(png), "--seed", "0")
    with Image.open(png) as img:
        assert img.size[0] == img.size[1] and img.size != (720, 720)  # not a scatter plot
    npy = tmp_path / "s.npy"
    run(pulled, "sample", "realnvp-imgtiny", "-n", "16", "-o", str(npy), "--seed", "0")
    import numpy as np

    levels = np.load(npy)
    assert levels.shape == (16, 1, 8, 8) and levels.dtype == np.int64
    assert levels.min() >= 0 and levels.max() <= 16


def test_unknown_dataset_is_one_line(registry_file, cli_runner):
    registry_file(CATALOG)
    out = run(cli_runner, "leaderboard", "cifar", code=1).output
    assert "no catalog entry is trained on 'cifar'" in out and "Traceback" not in out


def test_conditional_entries_are_ranked_among_themselves(isolated_home):
    """-log p(x | y) is not -log p(x): the label-conditional digits entries get ranks of
    their own, after the unconditional ones, and say what they are given."""
    from zoo.api import rankings

    table = rankings.rows("digits")
    plain = [r for r in table if r.given is None and r.rank]
    given = [r for r in table if r.given == "label" and r.rank]
    assert plain and given
    assert [r.rank for r in plain] == list(range(1, len(plain) + 1))
    assert [r.rank for r in given] == list(range(1, len(given) + 1))
    assert table.index(plain[-1]) < table.index(given[0])
    assert "given the label" in rankings.text_table(table)
    assert rankings.csv_text(table).splitlines()[0].endswith(",given")
