"""Write docs/api.md, the API reference, from the docstrings of the public API.

    python tools/gen_api_doc.py           # (re)write docs/api.md
    python tools/gen_api_doc.py --check   # exit 1, saying so, if docs/api.md is stale

The public API is exactly what ``zoo.__all__`` and ``zoo.testing.__all__`` list; each name
gets a section with its signature and docstring, and a class its fields (with types,
defaults and bounds), properties and public methods. The docstrings are the single source:
tests/project/test_api_doc.py fails when the file and the docstrings drift apart.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = ROOT / "docs" / "api.md"
MODULES = ("zoo", "zoo.testing")
HEADER = ("<!-- Generated from the docstrings of the public API (zoo.__all__, "
          "zoo.testing.__all__) by tools/gen_api_doc.py; do not edit by hand. -->")
INTRO = """\
# API reference

The public API is exactly what `zoo.__all__` and `zoo.testing.__all__` list, documented
below from their docstrings. Every other module (`zoo.artifact.io`, `zoo.training.loop`,
`zoo.plugin.registry`, ...) is internal and may change between versions: save and load artifacts
with `zoo.save` and `zoo.load` (not `zoo.artifact.io.save`/`load`), and let a family's
`train` call the generic trainer (`Family.train`). Plugin authors also use the input checks
of `zoo.plugin.model` (`check_continuous`, `check_discrete`, `check_sampling`,
`check_completion`) and `zoo.config.bounds`, described in [plugins.md](plugins.md); the
hooks are in [hooks.md](hooks.md).
"""

#: The fence of a signature: highlighted as Python, but not an example to run (an example,
#: a docstring's ``::`` block, is fenced ```python; tests/project/test_docs_run.py runs those).
SIGNATURE = "```python signature"

#: Objects whose own docstring is not theirs to write (a pluggy marker, a dict of checks).
DESCRIPTIONS = {
    "zoo.hookimpl": ("The decorator that marks a plugin's hook implementations "
                     "(`@zoo.hookimpl def zoo_register_families(register): ...`); the hooks "
                     "are documented in [hooks.md](hooks.md)."),
    "zoo.testing.CHECKS": "Every check by name, in the order they run (`name -> function`).",
}


def public_names(module: ModuleType) -> list[str]:
    """The names ``module.__all__`` lists, in that order."""
    return list(module.__all__)


def markdown(text: str) -> str:
    """reStructuredText-flavoured docstring -> Markdown: ``::`` blocks become fenced code,
    section underlines become bold headings."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if i + 1 < len(lines) and line.strip() and re.fullmatch(r"=+|-+", lines[i + 1].strip()):
            out.append(f"**{line.strip()}**")
            i += 2
            continue
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
            out += ["", "```python", *block, "```", ""]
            continue
        out.append(line)
        i += 1
    # ``code`` -> `code` in the prose only: inside a fence it would eat the fence's backticks.
    parts = re.split(r"(^```.*?^```$)", "\n".join(out).strip(), flags=re.M | re.S)
    return "".join(part if part.startswith("```") else re.sub(r"``([^`]+)``", r"`\1`", part)
                   for part in parts)


#: Internal functions a public method hands over to, documented with it (name -> target).
DELEGATES = {"Family.train": "zoo.training.loop.maximise_likelihood"}


class _Annotation(str):
    """A string annotation shown without quotes (``from __future__ import annotations``)."""

    def __repr__(self) -> str:
        return str(self)


def signature(obj: Any, name: str) -> str | None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        return None
    params = [p.replace(annotation=_Annotation(p.annotation)) if isinstance(p.annotation, str)
              else p for p in sig.parameters.values()]
    ret = sig.return_annotation
    sig = sig.replace(parameters=params,
                      return_annotation=_Annotation(ret) if isinstance(ret, str) else ret)
    return f"{name}{sig}"


def _delegate(target: str) -> list[str]:
    """The signature and docstring of the internal function ``target``, and the fields of
    the dataclass it returns."""
    module, _, name = target.rpartition(".")
    fn = getattr(importlib.import_module(module), name)
    parts = [f"The default calls `{target}`:", "", SIGNATURE, signature(fn, target) or target,
             "```", "", _doc(fn, ""), ""]
    returned = inspect.signature(fn).return_annotation
    cls = getattr(importlib.import_module(module), str(returned), None)
    if inspect.isclass(cls) and dataclasses.is_dataclass(cls):
        parts += [f"It returns a `{cls.__name__}`: {_doc(cls, '')}", ""] + _fields(cls) + [""]
    return parts


def _doc(obj: Any, qualified: str) -> str:
    if qualified in DESCRIPTIONS:
        return DESCRIPTIONS[qualified]
    return markdown(inspect.getdoc(obj) or "(undocumented)")


def _first_line(obj: Any, qualified: str) -> str:
    text = DESCRIPTIONS.get(qualified) or (inspect.getdoc(obj) or "(undocumented)")
    first = text.strip().split("\n\n")[0].replace("\n", " ")
    return re.sub(r"``([^`]+)``", r"`\1`", first).replace("|", "\\|")


def _fields(cls: type) -> list[str]:
    """A table of a dataclass's fields: type, default and bounds."""
    rows = ["| field | type | default | bounds |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f"`{f.default!r}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{f.default_factory()!r}`"
        else:
            default = "required"
        low, high = f.metadata.get("low"), f.metadata.get("high")
        limits = "" if low is None and high is None else f"{low} .. {high}"
        kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
        kind = kind.replace("|", "\\|")  # a union's bar would end the table cell
        rows.append(f"| `{f.name}` | `{kind}` | {default} | {limits} |")
    return rows


def _members(cls: type, prefix: str) -> list[str]:
    """The class's own public properties and methods, in source order."""
    parts: list[str] = []
    for key, value in cls.__dict__.items():
        if key.startswith("_") and key != "__call__":
            continue
        if isinstance(value, property):
            parts += [f"#### `{prefix}.{key}` (property)", "", _doc(value.fget, ""), ""]
        elif isinstance(value, (staticmethod, classmethod)) or inspect.isfunction(value):
            fn = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
            sig = signature(fn, f"{prefix}.{key}") or f"{prefix}.{key}(...)"
            parts += [f"#### `{prefix}.{key}`", "", SIGNATURE, sig, "```", "",
                      _doc(fn, ""), ""]
            if f"{prefix}.{key}" in DELEGATES:
                parts += _delegate(DELEGATES[f"{prefix}.{key}"])
    return parts


def section(module: str, name: str) -> list[str]:
    """The reference of ``module.name``."""
    obj = getattr(importlib.import_module(module), name)
    qualified = f"{module}.{name}"
    parts = [f"### {qualified}", ""]
    if inspect.isclass(obj):
        sig = signature(obj, qualified)
        if sig and dataclasses.is_dataclass(obj):  # other classes' __init__ is nn.Module's
            parts += [SIGNATURE, f"class {sig}", "```", ""]
        parts += [_doc(obj, qualified), ""]
        if dataclasses.is_dataclass(obj):
            parts += _fields(obj) + [""]
        parts += _members(obj, f"{name}")
    elif callable(obj) and qualified not in DESCRIPTIONS:
        parts += [SIGNATURE, signature(obj, qualified) or f"{qualified}(...)", "```", "",
                  _doc(obj, qualified), ""]
    else:
        parts += [_doc(obj, qualified), ""]
        if isinstance(obj, dict):
            parts += [f"- `{key}`: {_first_line(value, '')}" for key, value in obj.items()]
            parts.append("")
    return parts


def render() -> str:
    """The full text of docs/api.md."""
    parts = [HEADER, "", INTRO]
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        parts += [f"## {module_name}", "", markdown(inspect.getdoc(module) or ""), ""]
        parts += ["| name | |", "| --- | --- |"]
        for name in public_names(module):
            qualified = f"{module_name}.{name}"
            anchor = qualified.replace(".", "").lower()
            obj = getattr(module, name)
            parts.append(f"| [`{qualified}`](#{anchor}) | {_first_line(obj, qualified)} |")
        parts.append("")
        for name in public_names(module):
            parts += section(module_name, name)
    return "\n".join(parts).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if docs/api.md is out of date")
    args = parser.parse_args(argv)
    text = render()
    current = OUTPUT.read_text(encoding="utf-8") if OUTPUT.exists() else None
    if args.check:
        if current != text:
            print(f"{OUTPUT.relative_to(ROOT)} is out of date with the public API's docstrings: "
                  "run python tools/gen_api_doc.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # document this checkout, not whatever zoo is installed
    sys.exit(main())
