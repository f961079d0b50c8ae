"""The local store under ``$ZOO_HOME``: where artifacts live, and how they get there safely.

Every artifact is written into a staging folder beside its final place and then renamed,
so a killed process never leaves a half artifact under a real name. Writers of one name
take a file lock (``filelock``; the OS releases it when the holder dies, so a crashed
process never blocks the next one).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo.names import check_catalog_name

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"


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


def models_dir() -> Path:
    return home() / "models"


def artifact_dir(name: str) -> Path:
    """The store folder of a catalog name (validated: it cannot point outside the store)."""
    return models_dir() / check_catalog_name(name)


@contextlib.contextmanager
def locked(name: str, timeout: float = -1) -> Iterator[None]:
    """Hold the writer's lock of ``name`` (blocks until the current holder is done)."""
    from filelock import FileLock

    locks = home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with FileLock(str(locks / f"{check_catalog_name(name)}.lock"), timeout=timeout):
        yield


@contextlib.contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to write into; removed again if the block fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{STAGING_PREFIX}{final.name}-{uuid.uuid4().hex[:12]}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, final: Path) -> Path:
    """Move a finished staging folder to ``final`` atomically, replacing what was there."""
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f"{TRASH_PREFIX}{final.name}-{uuid.uuid4().hex[:12]}"
        os.replace(final, old)
    os.replace(tmp, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return final


def clean_leftovers(final: Path) -> None:
    """Remove staging and trash folders that a killed writer of ``final`` left behind.

    Call it only while holding the lock of ``final``'s name: then no live writer owns them.
    """
    if not final.parent.is_dir():
        return
    for prefix in (STAGING_PREFIX, TRASH_PREFIX):
        for leftover in final.parent.glob(f"{prefix}{final.name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
