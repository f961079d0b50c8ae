"""Write docs/hooks.md, the hook reference, from the hookspec docstrings in zoo/hookspecs.py.

    python tools/gen_hooks_doc.py           # (re)write docs/hooks.md
    python tools/gen_hooks_doc.py --check   # exit 1, saying so, if docs/hooks.md is stale

The docstrings are the single source: tests/project/test_hooks_doc.py fails when the file and the
docstrings drift apart.
"""

from __future__ import annotations

import argparse
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "hooks.md"
HEADER = ("<!-- Generated from the docstrings of zoo/hookspecs.py by tools/gen_hooks_doc.py; "
          "do not edit by hand. -->")


def hookspecs(module: ModuleType) -> list:
    """The hook specifications of ``module``, in source order."""
    specs = [fn for fn in vars(module).values()
             if inspect.isfunction(fn) and hasattr(fn, "zoo_spec")]
    return sorted(specs, key=lambda fn: inspect.getsourcelines(fn)[1])


def markdown(text: str) -> str:
    """reStructuredText-flavoured docstring -> Markdown: ``::`` blocks become fenced code."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(re.sub(r"\s*::$", ":", line.rstrip()))
            i += 1
            block: list[str] = []
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith("    ")):
                block.append(lines[i][4:])
                i += 1
            while block and not block[-1].strip():
                block.pop()
            while block and not block[0].strip():
                block.pop(0)
            out += ["", "```", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def render(module: ModuleType | None = None) -> str:
    """The full text of docs/hooks.md for the hookspecs in ``module`` (zoo.hookspecs)."""
    if module is None:
        from zoo import hookspecs as module
    specs = hookspecs(module)
    parts = [HEADER, "", "# Hook reference", "", markdown(inspect.getdoc(module) or ""), ""]
    parts += ["| hook | |", "| --- | --- |"]
    for fn in specs:
        summary = (inspect.getdoc(fn) or "").splitlines()[0]
        parts.append(f"| [`{fn.__name__}`](#{fn.__name__}) | {summary} |")
    parts.append("")
    for fn in specs:
        parts += [f"## {fn.__name__}", "", "```python signature",  # not an example to run
                  "@hookimpl  # from zoo.plugin import hookimpl",
                  f"def {fn.__name__}{inspect.signature(fn)}:", "```", "",
                  markdown(inspect.getdoc(fn) or "(undocumented)"), ""]
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if docs/hooks.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date with zoo/hookspecs.py: "
                  "run python tools/gen_hooks_doc.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
