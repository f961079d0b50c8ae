"""Build hook: the catalog, ``registry.yaml``, lives at the repository's top level (one
source of truth) and is copied into the ``zoo.catalog`` package of every wheel, where
``zoo.catalog`` finds it in a non-editable install. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildWithCatalog(build_py):
    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "zoo" / "catalog" / "registry.yaml"
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(HERE / "registry.yaml", target)


setup(cmdclass={"build_py": BuildWithCatalog})
