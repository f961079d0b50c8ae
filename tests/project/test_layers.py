"""One direction through the core: the layers of ``zoo/`` and of each plugin, checked on the
imports themselves.

Every ``import`` in ``zoo/`` and ``plugins/`` is read with ``ast`` (module level, inside
functions and under ``TYPE_CHECKING`` alike: a lazy import is still a dependency). A module
may import from its own layer or any layer below it, never from one above, and the import
graph has no cycle. ``LAYERS`` is the one declaration of the order; ``docs/architecture.md``
draws it, and a test keeps the drawing in step.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: The core's layers, bottom first. A package (``zoo/testing/``) is one entry: its
#: submodules share its layer.
LAYERS: list[tuple[str, list[str]]] = [
    ("foundation", ["errors", "names", "faults", "config", "hookspecs", "paths", "pictures", "lazy",
                    "checks", "__init__"]),
    ("data", ["data"]),
    ("infer", ["infer"]),
    ("plugin", ["plugin"]),
    ("catalog", ["catalog"]),
    ("artifact", ["artifact"]),
    ("training", ["training"]),
    ("kit", ["testing"]),
    ("api", ["api"]),
    ("cli", ["cli", "__main__"]),
    ("compat", ["family", "model"]),
]

#: Inside every first-party plugin, bottom first: the config is imported by both the model
#: and the family, and the model never imports the family.
PLUGIN_LAYERS: list[str] = ["config", "masks", "layers", "staircase", "networks", "splines", "fused",
                             "dequantization", "multiscale", "model", "family", "__init__"]


def _module_name(path: Path, base: Path) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, package: str, modules: set[str]) -> set[str]:
    """The modules among ``modules`` that ``path`` imports, relative imports resolved:
    ``from X import Y`` is ``X.Y`` when that is a module, else ``X``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                name = f"{base}.{alias.name}"
                if name in modules:
                    found.add(name)
                elif base in modules:
                    found.add(base)
    return found


def import_graph(packages: list[Path]) -> dict[str, set[str]]:
    """``{module: modules it imports}`` over the Python files of the package folders
    ``packages`` (edges only between those modules)."""
    files: dict[str, Path] = {}
    for package_dir in packages:
        for path in sorted(package_dir.rglob("*.py")):
            if "tests" in path.relative_to(package_dir).parts:
                continue  # a plugin's tests, filed beside it: not part of the package
            files[_module_name(path, package_dir.parent)] = path
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = _imports(path, package, set(files)) - {name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def core_rank(module: str) -> int:
    """The layer number of a ``zoo.*`` module."""
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    for rank, (_, members) in enumerate(LAYERS):
        if head in members:
            return rank
    raise AssertionError(f"{module} is in no layer: add it to LAYERS in {Path(__file__).name} "
                         "and to the drawing in docs/architecture.md")


def plugin_rank(module: str) -> int:
    parts = module.split(".")
    head = parts[1] if len(parts) > 1 else "__init__"
    if head not in PLUGIN_LAYERS:
        raise AssertionError(f"{module} is in no plugin layer: add it to PLUGIN_LAYERS")
    return PLUGIN_LAYERS.index(head)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a lower layer into a higher one, as readable lines."""
    bad = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            src_pkg, dst_pkg = source.split(".")[0], target.split(".")[0]
            if src_pkg == "zoo" and dst_pkg != "zoo":
                bad.append(f"{source} imports the plugin {target}: the core knows no family")
            elif src_pkg == dst_pkg == "zoo" and core_rank(source) < core_rank(target):
                bad.append(f"{source} ({LAYERS[core_rank(source)][0]}) imports {target} "
                           f"({LAYERS[core_rank(target)][0]}), a higher layer")
            elif src_pkg == dst_pkg != "zoo" and plugin_rank(source) < plugin_rank(target):
                bad.append(f"{source} imports {target}, a higher layer of its plugin")
            elif "zoo" not in (src_pkg, dst_pkg) and src_pkg != dst_pkg:
                bad.append(f"{source} imports another plugin's module {target}")
    return bad


#: The one declared exception, with its reason: the Hub convention puts ``from_pretrained``,
#: ``save_pretrained`` and ``push_to_hub`` on every model class, and they are the facade's
#: load, save and push. The calls are lazy (inside the methods): nothing below the api room
#: runs them, and importing the plugin room never imports the api.
ALLOWED_UPWARD = {("zoo.plugin.model", "zoo.api"):
                  "ZooModel's Hugging Face methods call the facade (load, save, push)"}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    """The import graph of ``zoo/`` and the first-party plugins, less the declared exception."""
    plugins = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())
    found = import_graph([ROOT / "zoo", *plugins])
    for source, target in ALLOWED_UPWARD:
        assert target in found[source], f"{source} no longer imports {target}: drop the exception"
        found[source] = found[source] - {target}
    return found


def test_no_import_cycles(graph):
    assert cycles(graph) == []


def test_no_import_from_a_lower_layer_into_a_higher_one(graph):
    assert upward_imports(graph) == []


def test_every_module_has_a_layer(graph):
    for module in graph:
        (core_rank if module.split(".")[0] == "zoo" else plugin_rank)(module)


def test_the_checker_finds_what_it_looks_for():
    """A cycle and an upward import, made on purpose, are both reported."""
    bad = {"zoo.artifact.store": {"zoo.api"}, "zoo.api": {"zoo.artifact.store"},
           "zoo_x.model": {"zoo_x.family"}, "zoo.training.loop": {"zoo_x.model"}}
    assert cycles(bad) == [["zoo.api", "zoo.artifact.store"]]
    found = upward_imports(bad)
    assert any("zoo.artifact.store (artifact) imports zoo.api (api)" in line for line in found)
    assert any("zoo_x.model imports zoo_x.family" in line for line in found)
    assert any("the core knows no family" in line for line in found)


def test_lazy_and_type_checking_imports_count(tmp_path):
    pkg = tmp_path / "zoo"
    (pkg / "artifact").mkdir(parents=True)
    (pkg / "cli").mkdir()
    for init in (pkg, pkg / "artifact", pkg / "cli"):
        (init / "__init__.py").write_text("")
    (pkg / "artifact" / "store.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from zoo.api import x\n"
        "def f():\n    from zoo.cli import commands\n")
    (pkg / "api.py").write_text("")
    (pkg / "cli" / "commands.py").write_text("from .. import api\n")
    g = import_graph([pkg])
    assert g["zoo.artifact.store"] == {"zoo.api", "zoo.cli.commands"}
    assert g["zoo.cli.commands"] == {"zoo.api"}


def test_the_architecture_drawing_matches_the_declared_layers():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = re.findall(r"^\s*(\d+)\. (\w+): (.+)$", text, flags=re.M)
    assert [(name, [m.strip("` ") for m in members.split(",")]) for _, name, members in drawn] \
        == [(name, members) for name, members in reversed(LAYERS)], (
        "docs/architecture.md's layer list differs from LAYERS in tests/project/test_layers.py")


def test_no_source_module_is_over_600_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in [*ROOT.joinpath("zoo").rglob("*.py"),
                                                     *ROOT.joinpath("plugins").rglob("*.py")]
            if "tests" not in p.parts and (n := len(p.read_text(encoding="utf-8").splitlines())) > 600]
    assert long == []
