import json

import numpy as np
import pytest
import torch
from cli_run import run

from zoo.cli.commands import cli


def test_help_and_version(cli_runner):
    assert "pull" in run(cli_runner, "--help").output
    assert "zoo, version" in run(cli_runner, "--version").output


def test_list_json(cli_runner):
    rows = json.loads(run(cli_runner, "list", "--json").output)
    entry = next(r for r in rows if r["name"] == "realnvp-moons")
    assert entry["family"] == "realnvp" and entry["pulled"] is False


def test_plugins_json(cli_runner):
    rows = json.loads(run(cli_runner, "plugins", "--json").output)
    realnvp = next(r for r in rows if r["name"] == "realnvp")
    assert realnvp["registered"] == {"families": ["realnvp"]}
    assert realnvp["hooks"] == ["zoo_register_families"] and realnvp["error"] is None


def test_pull_info_sample_eval(cli_runner, tiny_catalog, tmp_path):
    path = run(cli_runner, "pull", "realnvp-tiny", "-q").output.strip()
    assert path.endswith("realnvp-tiny")
    info = json.loads(run(cli_runner, "info", "realnvp-tiny", "--json").output)
    assert info["pulled"] and info["artifact"]["source"]["kind"] == "recipe"
    assert "came from" in run(cli_runner, "info", "realnvp-tiny").output
    listed = json.loads(run(cli_runner, "list", "--json").output)
    assert listed[0]["pulled"] is True

    png = tmp_path / "s.png"
    run(cli_runner, "sample", "realnvp-tiny", "-n", "50", "-o", str(png), "--seed", "1")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    npy = tmp_path / "s.npy"
    run(cli_runner, "sample", "realnvp-tiny", "-n", "50", "-o", str(npy), "--seed", "1")
    pt = tmp_path / "s.pt"
    run(cli_runner, "sample", "realnvp-tiny", "-n", "50", "-o", str(pt), "--seed", "1")
    csv = tmp_path / "s.csv"
    run(cli_runner, "sample", "realnvp-tiny", "-n", "50", "-o", str(csv), "--seed", "1")
    a = np.load(npy)
    assert a.shape == (50, 2)
    assert np.allclose(torch.load(pt, weights_only=True).numpy(), a)
    assert np.allclose(np.loadtxt(csv, delimiter=","), a, atol=1e-4)

    result = json.loads(run(cli_runner, "eval", "realnvp-tiny", "--json").output)
    assert result["n"] == 20000 and result["dims"] == 2 and result["stderr"] > 0
    assert abs(result["bits_per_dim"] - result["nll"] / (2 * np.log(2))) < 1e-9
    assert "nats per example" in run(cli_runner, "eval", "realnvp-tiny").output


def test_train_to_directory_then_load_by_path(cli_runner, tiny_catalog, tmp_path):
    out = tmp_path / "run"
    run(cli_runner, "train", "realnvp-tiny", "--steps", "5", "--seed", "3", "-o", str(out), "-q")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["recipe"]["steps"] == 5 and cfg["recipe"]["seed"] == 3
    run(cli_runner, "sample", str(out), "-n", "4", "-o", str(tmp_path / "x.npy"))


@pytest.mark.parametrize("args, message", [
    (["pull", "realnvp-tin"], "did you mean 'realnvp-tiny'"),
    (["info", "nothing-here"], "unknown model 'nothing-here'"),
    (["sample", "./missing-dir", "-n", "3"], "no artifact at missing-dir"),
    (["pull", "../../etc"], "no artifact at ../../etc"),
    (["pull", "Bad Name"], "unknown model"),
    (["sample", "realnvp-tiny", "-n", "0"], "number of samples must be a positive integer"),
    (["sample", "realnvp-tiny", "-n", "3", "-t", "0"], "temperature must be positive"),
    (["sample", "realnvp-tiny", "-n", "3", "-o", "x.gif"], "unknown output format"),
])
def test_errors_are_one_line(cli_runner, tiny_catalog, args, message):
    result = run(cli_runner, *args, code=1)
    assert message in result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in result.output


def test_debug_shows_the_exception(cli_runner):
    result = cli_runner.invoke(cli, ["--debug", "info", "nothing-here"])
    assert result.exit_code == 1 and result.exception is not None


def test_broken_registry_is_one_line(cli_runner, registry_file):
    registry_file("entries: [")
    result = run(cli_runner, "list", code=1)
    assert result.output.startswith("Error: registry.yaml is not valid YAML")
    run(cli_runner, "plugins")  # still works


def test_no_file_left_behind_on_failure(cli_runner, tiny_catalog, tmp_path):
    run(cli_runner, "sample", "realnvp-tiny", "-n", "0", "-o", str(tmp_path / "s.png"), code=1)
    assert list(tmp_path.glob("*s.png*")) == []
