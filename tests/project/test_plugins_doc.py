"""docs/plugins.md quotes the example plugin; the quotes must still be in the files they cite.

A code block right after ``<!-- from PATH -->`` must appear verbatim in ``PATH``.
"""

from __future__ import annotations

import re

import pytest
from layout import ROOT

DOC = ROOT / "docs" / "plugins.md"
QUOTE = re.compile(r"<!-- from (\S+) -->\n```\w*\n(.*?)\n```", re.S)


def quotes():
    return QUOTE.findall(DOC.read_text(encoding="utf-8"))


def test_the_tutorial_quotes_the_example():
    cited = {path for path, _ in quotes()}
    assert len(quotes()) >= 8
    assert {"examples/zoo-mixture/pyproject.toml",
            "examples/zoo-mixture/src/zoo_mixture/family.py",
            "examples/zoo-mixture/src/zoo_mixture/__init__.py",
            "examples/zoo-mixture/tests/test_gmm.py"} <= cited


@pytest.mark.parametrize("path,code", quotes(), ids=[f"{p}#{i}" for i, (p, _) in
                                                     enumerate(quotes())])
def test_each_quote_is_verbatim_in_its_file(path, code):
    source = (ROOT / path).read_text(encoding="utf-8")
    assert code in source, f"docs/plugins.md quotes {path}, but the file no longer has:\n{code}"


def test_links_point_at_files_that_exist():
    for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", DOC.read_text(encoding="utf-8")):
        if "://" not in target:
            assert (DOC.parent / target).exists(), target
