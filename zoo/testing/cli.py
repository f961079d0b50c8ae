"""``python -m zoo.testing FAMILY [--config JSON] [--json]``: the kit from a shell."""

from __future__ import annotations

import argparse
import json
import sys

from zoo.errors import ZooError
from zoo.testing.suite import check_family


def main(argv: list[str] | None = None) -> int:
    """``python -m zoo.testing FAMILY [--config JSON] [--json]``: check an installed family."""
    parser = argparse.ArgumentParser(prog="python -m zoo.testing",
                                     description="Run the conformance kit on an installed family.")
    parser.add_argument("family", help="family name, as shown by `zoo plugins`")
    parser.add_argument("--config", type=json.loads, default=None,
                        help='family config as JSON (default: the smallest, e.g. {"shape": [2]})')
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", action="append", default=[], help="leave out a check")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    try:
        report = check_family(args.family, args.config, seed=args.seed, skip=args.skip,
                              raise_on_failure=False)
    except (ZooError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.as_dict(), indent=2) if args.json else report.summary())
    return 0 if report.passed else 1
