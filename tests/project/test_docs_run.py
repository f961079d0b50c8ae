"""The Python examples of README.md and docs/*.md run as written (issue 30, item 7).

The convention, for whoever writes the docs:

- A fence whose info string is exactly ``python`` is an example, and this test runs it. The
  examples of one file run in order, in one namespace (a later block may use what an earlier
  one defined, as a reader would), in an empty working folder and an empty ``$ZOO_HOME``,
  with the Hub offline: nothing is downloaded.
- ``<!-- needs: hub -->`` or ``<!-- needs: gpu -->`` on the line right before the fence: the
  block needs a Hugging Face Hub server or a GPU. It is not run; a skipped test says so.
- ``<!-- from PATH -->`` on the line right before the fence: the block quotes ``PATH``
  (``test_plugins_doc.py`` checks the quote is verbatim; the file's own tests run it).
- ``python signature`` (the signatures of the generated references, docs/api.md and
  docs/hooks.md) and ``python fragment`` (an illustration with parts left out) are
  highlighted as Python but are not examples: they are not run.

A catalog name a doc pulls is served by a tiny entry of that name (``DOC_CATALOG``), and a
doc may need a setting a reader would have (``SETUPS``: the example plugin installed, the
CSV files it reads); everything else runs exactly as printed.
"""

from __future__ import annotations

import re
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from catalogs import catalog, tiny_entry
from layout import ROOT

from zoo.plugin import registry

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

#: What a ``<!-- needs: X -->`` marker may name, and the reason its block is not run.
NEEDS = {"hub": "needs a Hugging Face Hub server", "gpu": "needs a GPU"}
#: The words after ``python`` in a fence's info string that mean "shown, not run".
NOT_RUN = {"signature": "a signature, not an example",
           "fragment": "a fragment with parts left out"}
#: Fence languages the docs use; a Python block under any other name would escape the test.
LANGUAGES = {"", "python", "console", "sh", "text", "yaml", "toml", "mermaid"}

FENCE = re.compile(r"^(`{3,})([^`]*)$")
NEEDS_MARK = re.compile(r"^<!-- needs: (\S+) -->$")
QUOTE_MARK = re.compile(r"^<!-- from (\S+) -->$")

#: The catalog names the docs pull, as tiny entries (the real recipes take ~25 s each).
DOC_CATALOG = catalog(tiny_entry("realnvp-moons"))


@dataclass
class Block:
    path: Path
    line: int  #: the line of the opening fence (1-based)
    info: str
    code: str
    skip: str | None  #: why it is not run, or None

    @property
    def where(self) -> str:
        path = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{path}:{self.line}"


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path``; raises ``ValueError`` on a fence the convention does
    not know (a broken or unclosed fence, an unknown language or marker)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if re.match(r"^\s*``[A-Za-z]*\s*$", line):
            raise ValueError(f"{path.name}:{i + 1}: a broken fence (two backticks): {line!r}")
        fence = FENCE.match(line)
        if not fence:
            i += 1
            continue
        ticks, info = fence.group(1), fence.group(2).strip()
        end = next((j for j in range(i + 1, len(lines)) if lines[j] == ticks), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 1}: the fence {line!r} is never closed")
        language, _, rest = info.partition(" ")
        if language not in LANGUAGES:
            raise ValueError(f"{path.name}:{i + 1}: unknown fence language {info!r} "
                             f"(known: {sorted(LANGUAGES)})")
        if language == "python":
            before = lines[i - 1] if i else ""
            needs, quote = NEEDS_MARK.match(before), QUOTE_MARK.match(before)
            if rest and rest not in NOT_RUN:
                raise ValueError(f"{path.name}:{i + 1}: ```python {rest}: say 'python', "
                                 f"or one of {sorted(NOT_RUN)}")
            if needs and needs.group(1) not in NEEDS:
                raise ValueError(f"{path.name}:{i}: unknown need {needs.group(1)!r} "
                                 f"(known: {sorted(NEEDS)})")
            skip = (NOT_RUN[rest] if rest else NEEDS[needs.group(1)] if needs
                    else f"quotes {quote.group(1)} (kept verbatim by test_plugins_doc.py)" if quote
                    else None)
            found.append(Block(path, i + 1, info, "\n".join(lines[i + 1:end]), skip))
        i = end + 1
    return found


def run_blocks(path: Path) -> int:
    """Run the examples of ``path`` in order, in one namespace; an error names the block's
    file and line (the traceback shows the doc's own lines). Returns how many ran."""
    namespace: dict = {"__name__": "__doc_example__"}
    ran = 0
    for block in blocks(path):
        if block.skip:
            continue
        # Pad so that a traceback's line numbers are the doc's.
        code = compile("\n" * block.line + block.code, str(block.path), "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            raise AssertionError(f"the example at {block.where} fails: "
                                 f"{type(error).__name__}: {error}") from error
        ran += 1
    return ran


@contextmanager
def _example_plugin(monkeypatch):
    """docs/plugins.md: the example plugin installed (``pip install -e ./zoo-mixture``)."""
    monkeypatch.syspath_prepend(str(ROOT / "examples" / "zoo-mixture" / "src"))
    import zoo_mixture

    registry.register_plugin(zoo_mixture, "gmm")
    try:
        yield
    finally:
        registry.unregister_plugin("gmm")


@contextmanager
def _sensor_files(monkeypatch):
    """docs/data.md: the reader's CSV files (three correlated sensors, with a header)."""
    gen = torch.Generator().manual_seed(0)
    for name, rows in (("sensors.csv", 400), ("today.csv", 20)):
        x = torch.randn(rows, 3, generator=gen)
        x[:, 1] += x[:, 0]
        body = "\n".join(",".join(f"{v:.4f}" for v in row) for row in x.tolist())
        Path(name).write_text("temp,pressure,flow\n" + body + "\n", encoding="utf-8")
    yield


#: What a reader of the doc already has, set up before its examples run.
SETUPS = {"docs/plugins.md": _example_plugin, "docs/data.md": _sensor_files}


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _collected(path: Path) -> list[Block]:
    """``blocks(path)``, or none while its fences are broken (the convention test says why)."""
    try:
        return blocks(path)
    except ValueError:
        return []


RUNNABLE = [p for p in DOCS if any(not b.skip for b in _collected(p))]
SKIPPED = [b for p in DOCS for b in _collected(p) if b.skip and not b.info.startswith("python ")]


@pytest.mark.parametrize("path", RUNNABLE, ids=_id)
def test_the_examples_run(path, tmp_path, monkeypatch, registry_file, one_thread):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    registry_file(DOC_CATALOG)
    torch.manual_seed(0)
    setup = SETUPS.get(_id(path))
    with setup(monkeypatch) if setup else nullcontext():
        start = time.perf_counter()
        ran = run_blocks(path)
    print(f"{_id(path)}: {ran} examples in {time.perf_counter() - start:.1f} s")
    assert ran


@pytest.mark.parametrize("block", SKIPPED, ids=lambda b: b.where)
def test_the_examples_not_run_here(block):
    pytest.skip(f"{block.where} {block.skip}")


def test_every_fence_follows_the_convention():
    counts = {"run": 0, "skipped": 0}
    for path in DOCS:
        for block in blocks(path):  # raises on a broken fence
            counts["skipped" if block.skip else "run"] += 1
    assert counts["run"] >= 10, counts
    api = blocks(ROOT / "docs" / "api.md")
    assert any(not b.skip for b in api), "docs/api.md shows no example any more"
    assert all(b.info == "python signature" for b in api if b.skip)


def test_a_broken_example_fails_and_names_its_line(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("# A doc\n\n```python\nx = 1\n```\n\nthen:\n\n```python\nprint(y)\n```\n")
    with pytest.raises(AssertionError, match=r"doc.md:9 fails: NameError: name 'y'") as info:
        run_blocks(doc)
    assert info.value.__cause__.__traceback__.tb_next.tb_lineno == 10  # the doc's line
    doc.write_text("``python\nx = 1\n``\n")  # what docs/api.md had
    with pytest.raises(ValueError, match="doc.md:1: a broken fence"):
        blocks(doc)
    doc.write_text("```python\nx = 1\n``\n")
    with pytest.raises(ValueError, match="never closed"):
        blocks(doc)
    doc.write_text("<!-- needs: tpu -->\n```python\nx = 1\n```\n")
    with pytest.raises(ValueError, match="unknown need 'tpu'"):
        blocks(doc)


def test_blocks_marked_or_quoted_are_not_run(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text("<!-- needs: hub -->\n```python\nraise SystemExit\n```\n\n"
                   "<!-- from x.py -->\n```python\nraise SystemExit\n```\n\n"
                   "```python signature\ndef f(x):\n```\n\n```python\nok = True\n```\n")
    assert [b.skip is None for b in blocks(doc)] == [False, False, False, True]
    assert run_blocks(doc) == 1
