"""``zoo plugin new NAME``: a complete, installable plugin package to start from.

The package is what ``docs/plugins.md`` describes, filled in: the entry point, a config, a
family, a small correct model of its kind, a catalog entry, and a test that runs the
conformance kit. ``--kind vector`` gives a diagonal Gaussian over vectors (its entry is fitted
to two moons); ``--kind image`` gives independent categoricals per pixel (an
``AutoregressiveModel``, fitted to 8x8 digits). Both pass the kit and build at once, so an
author changes a working model rather than starting from an empty folder.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path
from string import Template

from zoo.errors import ZooError

TEMPLATES = Path(__file__).with_name("scaffold_templates")
KINDS = ("vector", "image")
NAME = re.compile(r"[a-z][a-z0-9]{1,30}")
#: What each kind fills in: the data, its config and the entry's recipe.
KIND_VALUES = {
    "vector": {"data_kind": "continuous", "dataset": "moons", "config": '{"shape": [2]}',
               "recipe": '{"steps": 200, "batch_size": 256, "lr": 0.05, "seed": 0, '
                         '"val_fraction": 0.05, "eval_every": 100}',
               "what": "a diagonal Gaussian over vectors", "test_config": '{"shape": [2]}'},
    "image": {"data_kind": "discrete", "dataset": "digits",
              "config": '{"shape": [1, 8, 8], "levels": 17}',
              "recipe": '{"steps": 200, "batch_size": 256, "lr": 0.05, "seed": 0, '
                        '"val_fraction": 0.05, "eval_every": 100}',
              "what": "independent categoricals per pixel",
              "test_config": '{"shape": [1, 2, 2], "levels": 3}'},
}


def check_name(name: str) -> str:
    """A plugin name: lower-case letters and digits, a letter first (it is the family's
    name, the entry point's, and with a ``zoo_`` prefix the package's)."""
    if not NAME.fullmatch(name) or keyword.iskeyword(name):
        raise ZooError(f"{name!r} is not a plugin name: use 2 to 31 lower-case letters and "
                       "digits, a letter first (it becomes the family name and the package "
                       f"zoo_{name})")
    return name


def new_plugin(name: str, kind: str, where: Path) -> Path:
    """Write the package of plugin ``name`` into ``where/zoo-NAME`` and return that folder;
    an existing folder is refused, with nothing written."""
    check_name(name)
    if kind not in KINDS:
        raise ZooError(f"--kind {kind!r}: choose {' or '.join(KINDS)}")
    root = Path(where) / f"zoo-{name}"
    if root.exists() or root.is_symlink():
        raise ZooError(f"{root} already exists; choose another name or folder (nothing was "
                       "written)")
    values = {"name": name, "package": f"zoo_{name}", "Class": name.capitalize(),
              "kind": kind, **KIND_VALUES[kind]}
    files = {
        "pyproject.toml": "pyproject.toml",
        "README.md": "README.md",
        f"src/zoo_{name}/__init__.py": "init.py",
        f"src/zoo_{name}/family.py": "family.py",
        f"src/zoo_{name}/model.py": f"model_{kind}.py",
        f"tests/test_{name}.py": "test_plugin.py",
    }
    staged = {path: Template((TEMPLATES / f"{template}.tmpl").read_text()).substitute(values)
              for path, template in files.items()}
    for path, text in staged.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return root
