"""The table of docs/guarantees.md, built from the tests that inject the faults.

Runs the fault, concurrency and hostile-input tests with ``ZOO_GUARANTEES_REPORT`` set, so
that each test, once its assertions have passed, adds a row (what was injected or fed, how
many times, what the program did, what the store held afterwards). The table is printed
only if every test passed: a row is never a claim that a failing test would have made.

    python -m benchmarks.guarantees            # print the Markdown table
    python -m benchmarks.guarantees --json     # the rows as JSON
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TESTS = ["test_crash.py", "test_concurrency.py", "test_integrity.py", "test_derived_buffers.py",
         "test_hostile.py", "test_names.py", "test_secrets.py", "test_numeric_input.py",
         "test_fuzz.py", "test_signals.py", "test_store_faults.py", "test_destination.py",
         "test_hostile_artifacts.py", "test_hostile_data.py", "test_hostile_images.py",
         "test_hostile_completion.py", "test_interrupted_writes.py"]
ORDER = ["crash", "concurrency", "integrity", "hostile", "names", "secrets", "numeric", "fuzz",
         "signals", "sharing", "store", "destination"]
TITLES = {"crash": "1. Crash safety (SIGKILL of real processes)", "concurrency": "2. Concurrency",
          "integrity": "3. Integrity", "hostile": "4. Hostile files",
          "names": "5. Hostile names", "secrets": "6. Secrets",
          "numeric": "7. Bad numeric input", "fuzz": "4. Hostile files (fuzzing)",
          "signals": "8. Stop signals", "sharing": "9. Shared stores",
          "store": "10. A store that cannot be written",
          "destination": "11. Writing outside the store destroys nothing"}


def collect() -> list[dict]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rows.jsonl"
        env = {**os.environ, "ZOO_GUARANTEES_REPORT": str(report)}
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               *[str(path) for t in TESTS for path in ROOT.glob(f"tests/*/{t}")]]
        done = subprocess.run(cmd, cwd=ROOT, env=env, stdout=sys.stderr)  # stdout: the table
        if done.returncode != 0:
            raise SystemExit(f"tests failed (exit {done.returncode}); no table")
        return [json.loads(line) for line in report.read_text().splitlines()]


def table(rows: list[dict]) -> str:
    lines = ["| guarantee | fault injected / input tried | tries | what the program did "
             "| what the store held afterwards |", "| --- | --- | ---: | --- | --- |"]
    for row in sorted(rows, key=lambda r: ORDER.index(r["guarantee"])):
        cells = [TITLES[row["guarantee"]], row["case"], str(row["tries"]), row["program"],
                 row["store_after"]]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    total = sum(r["tries"] for r in rows)
    lines.append(f"\n{len(rows)} rows, {total} faults and hostile inputs in all.")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args()
    rows = collect()
    print(json.dumps(rows, indent=2) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
