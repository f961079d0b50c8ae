"""Where zoo keeps things on disk: ``$ZOO_HOME`` (the store and its locks) and ``$ZOO_DATA``
(datasets that need files, such as MNIST). Foundation, so that the data package can find its
files without knowing the store."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """``$ZOO_HOME``, or the platform's cache folder for zoo."""
    value = os.environ.get("ZOO_HOME")
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("zoo", appauthor=False))


def data_dir() -> Path:
    """Where datasets that need files (MNIST) are looked for: ``$ZOO_DATA`` or ``$ZOO_HOME/data``."""
    value = os.environ.get("ZOO_DATA")
    return Path(value).expanduser() if value else home() / "data"
