"""Write docs/results/results-<dataset>.csv: ``zoo leaderboard DATASET --csv`` for every
dataset of the catalog, from an empty store (the catalog's recorded, recipe-measured numbers).

    python tools/gen_results.py            # (re)write the files
    python tools/gen_results.py --check    # exit 1, saying so, if a file is stale

tests/project/test_results_csv.py fails when the files and the catalog drift apart.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "docs" / "results"


def render() -> dict[str, str]:
    """``{file name: CSV}`` for every dataset with a catalog entry, from an empty store."""
    from zoo.api import leaderboard
    from zoo.api.rankings import csv_text
    from zoo.catalog import catalog

    before = os.environ.get("ZOO_HOME")
    with tempfile.TemporaryDirectory() as home:
        os.environ["ZOO_HOME"] = home
        try:
            return {f"results-{d}.csv": csv_text(leaderboard(d))
                    for d in sorted({e.dataset for e in catalog()})}
        finally:
            if before is None:
                os.environ.pop("ZOO_HOME", None)
            else:
                os.environ["ZOO_HOME"] = before


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        stale = sorted(n for n, text in files.items()
                       if not (OUT / n).is_file() or (OUT / n).read_text() != text)
        extra = sorted(p.name for p in OUT.glob("results-*.csv") if p.name not in files)
        if stale or extra:
            print(f"docs/results is stale ({', '.join(stale + extra)}): run "
                  "python tools/gen_results.py", file=sys.stderr)
            return 1
        return 0
    OUT.mkdir(parents=True, exist_ok=True)
    for old in OUT.glob("results-*.csv"):
        if old.name not in files:
            old.unlink()
    for name, text in files.items():
        (OUT / name).write_text(text)
    print(f"wrote {len(files)} files to {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
