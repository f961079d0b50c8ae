"""``zoo leaderboard --csv`` and the results tables in docs/results (issue 30, item 3):
timm's results-*.csv layout, generated from the catalog and kept in step with it."""

from __future__ import annotations

import csv
import io
import subprocess
import sys

from cli_run import run
from layout import ROOT

from zoo.api.rankings import CSV_COLUMNS


def test_docs_results_match_the_catalog():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "gen_results.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_check_sees_a_stale_table(tmp_path, monkeypatch):
    sys.path.insert(0, str(ROOT / "tools"))
    import gen_results

    monkeypatch.setattr(gen_results, "OUT", tmp_path)
    assert gen_results.main([]) == 0
    first = sorted(tmp_path.glob("results-*.csv"))[0]
    first.write_text(first.read_text().replace(",1,", ",2,", 1) + "x\n")
    assert gen_results.main(["--check"]) == 1


def test_leaderboard_csv_is_ranked_with_the_papers_figures(cli_runner):
    rows = list(csv.DictReader(io.StringIO(
        run(cli_runner, "leaderboard", "binarized-mnist", "--csv").output)))
    assert tuple(rows[0]) == CSV_COLUMNS
    # Ranked within what the NLL is given: -log p(x), then -log p(x | label).
    for given in {r["given"] for r in rows}:
        group = [r for r in rows if r["rank"] and r["given"] == given]
        assert [int(r["rank"]) for r in group] == list(range(1, len(group) + 1))
        nlls = [float(r["test_nll"]) for r in group]
        assert nlls == sorted(nlls)
    ranked = [r for r in rows if r["rank"] and not r["given"]]
    for r in ranked:
        assert r["paper_reference"] and float(r["gap_nll"]) == round(
            float(r["test_nll"]) - float(r["paper_nll"]), 6)
