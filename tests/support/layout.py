"""Where things are, for tests wherever they are filed: the repository, the tests, their
fixture files and support modules."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  #: the repository
TESTS = ROOT / "tests"
SUPPORT = TESTS / "support"  #: modules the tests import (faultkit, hubserver, ...)
FIXTURES = TESTS / "fixtures"  #: files the tests read (artifacts written by older zoos)
