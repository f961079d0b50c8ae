"""Scores people can act on: every artifact records the distribution of its training and
test log p, `zoo score` gives each example's percentile against it, `--reference` the
AUROC, and `--plot` both histograms on one axis; an older artifact says in one line that it
records none."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import zoo
from zoo.api import scoring
from zoo.artifact.scores import percentile
from zoo.cli.commands import cli

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "realnvp-vector-format1"


def moons_csv(path: Path, n: int, *, noise: bool = False) -> Path:
    x = (torch.rand(n, 2, generator=torch.Generator().manual_seed(3)) * 8 - 4 if noise else
         zoo.get_dataset("moons").examples("test").take(np.arange(n)))
    np.savetxt(path, x.numpy(), delimiter=",")
    return path


def test_a_catalog_build_records_its_scores_and_zoo_score_gives_percentiles(
        pictured_artifact, tmp_path, cli_runner):
    cfg = json.loads((pictured_artifact / "config.json").read_text())
    recorded = cfg["log_prob"]
    assert recorded["test"]["n"] == cfg["metrics"]["test_n"]
    model = zoo.load(pictured_artifact)
    test = scoring.score(model, moons_csv(tmp_path / "t.csv", int(cfg["metrics"]["test_n"])))
    assert recorded["levels"][10] == 50.0
    assert recorded["test"]["quantiles"][10] == pytest.approx(torch.quantile(test, 0.5).item(), rel=1e-5)
    noise = moons_csv(tmp_path / "noise.csv", 40, noise=True)
    result = cli_runner.invoke(cli, ["score", str(pictured_artifact), "--data", str(noise)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == "log_prob,train_percentile" and len(lines) == 41
    first = [float(v) for v in lines[1].split(",")]
    assert first[1] == round(percentile(recorded, "train", first[0]), 2)
    assert "score below the training data's 1st percentile" in result.stderr
    assert "records no" not in result.stderr


def test_an_artifact_that_records_no_distribution_says_so_in_one_line(tmp_path, cli_runner):
    old = shutil.copytree(FIXTURE, tmp_path / "old")
    data = tmp_path / "d.csv"
    np.savetxt(data, np.random.default_rng(0).normal(size=(5, 3)), delimiter=",")
    result = cli_runner.invoke(cli, ["score", str(old), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "log_prob"
    [line] = result.stderr.splitlines()
    assert "records no distribution of training scores" in line


def test_reference_auroc_and_both_histograms(pictured_artifact, tmp_path, cli_runner,
                                             monkeypatch):
    from zoo import pictures

    drawn = []
    monkeypatch.setattr(pictures, "histograms", lambda series, edges, path, **k: (
        drawn.append((series, edges, k)), Path(path).write_bytes(b"png")))
    normal = moons_csv(tmp_path / "normal.csv", 200)
    noise = moons_csv(tmp_path / "noise.csv", 100, noise=True)
    out, plot = tmp_path / "s.csv", tmp_path / "h.png"
    result = cli_runner.invoke(cli, ["score", str(pictured_artifact), "--data", str(noise),
                                     "--reference", str(normal), "-o", str(out), "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    auroc = float(next(x for x in result.output.splitlines() if x.startswith("AUROC")).split()[1])
    assert auroc > 0.8  # noise over the moons' box scores below the moons
    [(series, edges, kwargs)] = drawn
    assert [s.label.split("\n")[0] for s in series] == [
        "noise.csv", f"{normal} (reference)", "training examples"]
    assert all(len(s.fractions) == len(edges) - 1 for s in series)
    assert sum(series[2].fractions) == pytest.approx(1.0)  # the recorded range is inside
    assert [label.split("\n")[0] for label, _ in kwargs["marks"]] == ["training 1st percentile"]
    assert out.read_text().splitlines()[0] == "log_prob,train_percentile"


def test_auroc_is_the_rank_statistic():
    ref = torch.tensor([3.0, 4.0, 5.0])
    assert scoring.auroc(ref, torch.tensor([0.0, 1.0])) == 1.0
    assert scoring.auroc(ref, ref.clone()) == 0.5
    assert scoring.auroc(torch.tensor([1.0, 3.0]), torch.tensor([2.0])) == 0.5


def test_bad_reference_is_refused_in_one_line_and_nothing_is_written(pictured_artifact,
                                                                    tmp_path, cli_runner):
    data = moons_csv(tmp_path / "d.csv", 10)
    out, plot = tmp_path / "s.csv", tmp_path / "h.png"
    result = cli_runner.invoke(cli, ["score", str(pictured_artifact), "--data", str(data),
                                     "--reference", str(tmp_path / "missing.csv"), "-o", str(out),
                                     "--plot", str(plot)])
    assert result.exit_code != 0 and "missing.csv: no such file" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not plot.exists()
