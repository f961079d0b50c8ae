"""The distribution of log p an artifact records (``log_prob`` in config.json, format 3):
the quantiles, the percentile of a score against them, and refusing a hostile entry."""

from __future__ import annotations

import json

import pytest
import torch

import zoo
from zoo.artifact import io as artifacts
from zoo.artifact import scores
from zoo.errors import ArtifactError


def test_a_score_s_percentile_interpolates_the_recorded_quantiles():
    recorded = scores.record({"train": torch.arange(1001, dtype=torch.float64),
                              "test": torch.tensor([1.0, float("nan"), 3.0])})
    assert recorded["train"]["n"] == 1001 and recorded["test"]["n"] == 2  # NaN left out
    assert recorded["levels"] == list(scores.LEVELS)
    assert scores.quantile(recorded, "train", 1.0) == pytest.approx(10.0)
    got = scores.percentiles(recorded, "train", [-5.0, 0.0, 10.0, 15.0, 500.0, 999.5, 1000.0, 2e6])
    assert got == pytest.approx([0.0, 0.0, 1.0, 1.5, 50.0, 99.95, 100.0, 100.0])
    edges = [0.0, 250.0, 500.0, 1000.0]
    assert scores.fractions(recorded, "train", edges) == pytest.approx([0.25, 0.25, 0.5])
    assert scores.record({"train": torch.tensor([float("inf")])}) == {}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["train"]["quantiles"].reverse(), "in increasing order"),
    (lambda d: d["train"]["quantiles"].pop(), "one per level"),
    (lambda d: d["train"].update(n=0), "positive integer"),
    (lambda d: d.update(levels=[0, 50, 50]), "increasing percentiles"),
    (lambda d: d.update(other={"n": 1, "quantiles": []}), "unknown key 'other'"),
])
def test_a_hostile_log_prob_entry_is_refused_by_name(tmp_path, change, message):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    recorded = scores.record({"train": torch.randn(50, dtype=torch.float64)})
    path = artifacts.save(flow, tmp_path / "flow", log_prob=recorded)
    raw = json.loads((path / artifacts.CONFIG).read_text())
    assert raw["format"] == 3 and raw["log_prob"] == recorded
    change(raw["log_prob"])
    (path / artifacts.CONFIG).write_text(json.dumps(raw))
    with pytest.raises(ArtifactError, match="log_prob"):
        artifacts.read_config(path)
    with pytest.raises(ArtifactError, match=message):
        artifacts.read_config(path)
