"""`zoo info` says which numbers were measured on the stored artifact and which are the
catalog's expected values."""

from __future__ import annotations

import torch

from conftest import TINY_MOONS
from zoo import api
from zoo.artifact import io as artifacts
from zoo.artifact import store
from zoo.cli.commands import cli

CATALOG = TINY_MOONS + "    metrics: {test_nll: 1.5}\n"  # the expected value zoo info shows


def lines(cli_runner, *args) -> dict[str, str]:
    result = cli_runner.invoke(cli, ["info", *args])
    assert result.exit_code == 0, result.output
    return {line.split("  ")[0].strip(): line.split("  ", 1)[1].strip()
            for line in result.output.splitlines()}


def test_the_catalog_value_is_marked_expected_when_not_pulled(registry_file, cli_runner):
    registry_file(CATALOG)
    shown = lines(cli_runner, "realnvp-tiny")
    assert shown["pulled"] == "no"
    assert shown["test_nll"] == "1.5000 (expected)"


def test_an_artifact_without_metrics_of_its_own_shows_only_the_expected_value(
        registry_file, cli_runner):
    registry_file(CATALOG)
    torch.manual_seed(0)
    model = api.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    artifacts.save(model, store.artifact_dir("realnvp-tiny"))
    shown = lines(cli_runner, "realnvp-tiny")
    assert shown["pulled"] == "yes" and shown["test_nll"] == "1.5000 (expected)"


def test_a_measured_value_is_shown_as_measured(registry_file, cli_runner):
    registry_file(CATALOG)
    measured = api.pull("realnvp-tiny", progress=False)
    nll = artifacts.read_config(measured).metrics["test_nll"]
    shown = lines(cli_runner, "realnvp-tiny")
    assert shown["test_nll"] == f"{nll:.4f}"
