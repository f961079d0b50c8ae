"""One import for plugin authors: ``zoo.plugin`` gives a family everything it needs, the
first-party plugins use nothing else of zoo's, and plugins written against the old
``zoo.family``/``zoo.model`` keep working."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings

import pytest
from layout import ROOT

PLUGINS = sorted(p for p in (ROOT / "plugins").iterdir() if (p / "__init__.py").is_file())


def zoo_imports(path) -> set[str]:
    """The ``zoo`` modules a file imports (``from zoo.X import`` and ``import zoo.X``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "zoo" or node.module.startswith("zoo."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "zoo" or a.name.startswith("zoo."))
    return found


@pytest.mark.parametrize("plugin", PLUGINS, ids=lambda p: p.name)
def test_first_party_plugins_import_only_zoo_plugin(plugin):
    used = {f"{path.relative_to(ROOT)}: {module}"
            for path in plugin.glob("*.py") for module in zoo_imports(path)
            if module != "zoo.plugin"}
    assert used == set()


def test_the_checker_sees_other_imports(tmp_path):
    path = tmp_path / "model.py"
    path.write_text("import zoo.checks\nfrom zoo.plugin.model import ZooModel\nfrom zoo import plugin\n")
    assert zoo_imports(path) == {"zoo.checks", "zoo.plugin.model", "zoo"}


def test_zoo_plugin_names_what_a_family_needs():
    import zoo.plugin as plugin
    from zoo.checks import check_discrete
    from zoo.plugin.autoregressive import AutoregressiveModel
    from zoo.plugin.family import Family
    from zoo.plugin.model import ZooModel

    assert plugin.Family is Family and plugin.ZooModel is ZooModel
    assert plugin.AutoregressiveModel is AutoregressiveModel
    assert plugin.check_discrete is check_discrete
    assert set(plugin.__all__) <= set(dir(plugin))
    with pytest.raises(AttributeError, match="no attribute 'Famliy'"):
        plugin.Famliy  # noqa: B018


def test_registering_a_family_through_zoo_plugin_imports_no_torch():
    code = ("import sys; from zoo.plugin import Family, hookimpl, bounds, ConfigError, Dataset; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("old, name, new", [("zoo.family", "Family", "zoo.plugin.family"),
                                            ("zoo.model", "ZooModel", "zoo.plugin.model")])
def test_the_old_imports_still_work_and_name_the_new_one(old, name, new):
    import importlib

    sys.modules.pop(old, None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)
    assert any("zoo.plugin" in str(w.message) and w.category is DeprecationWarning
               for w in caught)
