"""The small frictions a newcomer hit (issue 30, item 8): help that says what an option
does, errors that name the flag to use, and one rule for a one-channel image's axis."""

from __future__ import annotations

import pytest
import torch
from cli_run import run

import zoo
from zoo.errors import ZooError


def test_sample_help_explains_temperature_seed_and_the_default_output(cli_runner):
    text = " ".join(run(cli_runner, "sample", "--help").output.split())
    assert "-t, --temperature FLOAT Spread of the samples: 1 is the model itself" in text, text
    assert "without it every run draws different samples" in text
    assert "default:NAME-samples.pnginthisfolder" in "".join(text.split())  # wrapped at "-"


def test_eval_of_a_model_without_a_dataset_names_the_flag(tmp_path):
    flow = zoo.get_family("realnvp").build({"shape": [2], "couplings": 1, "hidden": 4})
    path = zoo.save(flow, tmp_path / "flow")
    with pytest.raises(ZooError, match="--dataset NAME") as caught:
        zoo.evaluate(str(path))
    assert "--data SOURCE" in str(caught.value)


def test_a_missing_channel_axis_is_refused_saying_which_rule_holds():
    model = zoo.get_family("made").build({"shape": [1, 8, 8], "levels": 17, "hidden": [8]})
    with pytest.raises(ValueError, match=r"keep the channel axis .*x\.unsqueeze\(1\)"):
        model.log_prob(torch.zeros(4, 8, 8, dtype=torch.long))
    assert model.log_prob(torch.zeros(4, 1, 8, 8, dtype=torch.long)).shape == (4,)
