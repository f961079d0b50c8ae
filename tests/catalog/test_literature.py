"""The leaderboard sets an entry beside the literature (zoo.catalog.literature): the paper's figure
with its reference, the protocol difference and the gap, as text, JSON and Markdown."""

from __future__ import annotations

import json
import math

import pytest

from zoo.api.rankings import markdown, rows
from zoo.catalog import catalog
from zoo.catalog.literature import Literature
from zoo.cli.commands import cli

CATALOG = """
version: 1
entries:
  - name: made-bits
    family: made
    dataset: digits
    config: {{shape: [1, 8, 8], levels: 17, hidden: [8]}}
    recipe: {{steps: 1}}
    metrics: {{test_nll: 90.0, test_nll_stderr: 0.5}}
    literature: {literature}
  - name: made-plain
    family: made
    dataset: digits
    config: {{shape: [1, 8, 8], levels: 17, hidden: [8]}}
    recipe: {{steps: 1}}
    metrics: {{test_nll: 95.0}}
"""
NATS = "{nll: 88.04, reference: Germain et al. 2015, protocol: fixed binarization}"
BITS = "{bits_per_dim: 2.0, reference: A paper}"


def test_the_gap_is_zoos_figure_minus_the_papers(registry_file, cli_runner):
    registry_file(CATALOG.format(literature=NATS))
    text = cli_runner.invoke(cli, ["leaderboard", "digits"]).output
    assert "paper 88.04 nats (Germain et al. 2015); gap +1.96 nats" in text
    assert "protocol difference: fixed binarization" in text
    data = {r["name"]: r for r in json.loads(cli_runner.invoke(cli, ["leaderboard", "digits",
                                                                     "--json"]).output)}
    assert data["made-bits"]["gap_nll"] == pytest.approx(1.96)
    assert data["made-bits"]["gap_bits_per_dim"] == pytest.approx(1.96 / (64 * math.log(2)))
    assert data["made-bits"]["literature"]["reference"] == "Germain et al. 2015"
    assert data["made-plain"]["literature"] is None and data["made-plain"]["gap_nll"] is None
    table = markdown(rows("digits"))
    assert "| `made-bits` | 88.04 nats | Germain et al. 2015 | +1.96 nats" in table
    assert "fixed binarization |" in table


def test_a_figure_in_bits_per_dim_is_compared_in_both_units(registry_file):
    registry_file(CATALOG.format(literature=BITS))
    row = next(r for r in rows("digits") if r.name == "made-bits")
    paper_nats = 2.0 * 64 * math.log(2)
    assert row.literature["nll"] == pytest.approx(paper_nats)
    assert row.gap_nll == pytest.approx(90.0 - paper_nats)
    assert row.gap_bits_per_dim == pytest.approx(90.0 / (64 * math.log(2)) - 2.0)


@pytest.mark.parametrize("literature, message", [
    ("{nll: 80, bits_per_dim: 1.0, reference: X}", "exactly one of nll"),
    ("{reference: X}", "exactly one of nll"),
    ("{nll: 80, reference: ' '}", "must name the paper"),
])
def test_a_bad_figure_is_refused_naming_the_entry(registry_file, cli_runner, literature, message):
    registry_file(CATALOG.format(literature=literature))
    result = cli_runner.invoke(cli, ["list"])
    assert result.exit_code == 1 and message in result.output and "made-bits" in result.output


def test_the_catalog_sets_each_gpu_entry_beside_its_paper():
    """The literature figures the issue names, in the catalog itself."""
    figures = {e.name: e.literature for e in catalog() if e.literature}
    assert figures["made-binarized-mnist"] == Literature(
        reference=figures["made-binarized-mnist"].reference, nll=88.04,
        protocol=figures["made-binarized-mnist"].protocol)
    assert figures["pixelcnn-binarized-mnist"].nll == 81.30
    assert figures["realnvp-mnist"].bits_per_dim == 1.06
    for name in ("made-binarized-mnist", "pixelcnn-binarized-mnist"):
        assert "fixed binarization" in figures[name].protocol
        assert "dynamic" in figures[name].protocol
    assert "dequantized" in figures["realnvp-mnist"].protocol
