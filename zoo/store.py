"""The local store under ``$ZOO_HOME``: where artifacts live, and how they get there safely.

Every artifact is written into a staging folder beside its final place and then renamed,
so a killed process never leaves a half artifact under a real name. Writers of one name
take a file lock (``filelock``; the OS releases it when the holder dies, so a crashed
process never blocks the next one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo import faults
from zoo.names import check_catalog_name

# The files of an artifact, the layout Hugging Face tooling uses.
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
FILES = (CONFIG, WEIGHTS, CARD)

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
SUFFIX_LEN = 12  # hex digits that make a staging or trash folder's name unique

log = logging.getLogger(__name__)


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


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds all three files of an artifact (their contents are checked on load)."""
    return all((path / f).is_file() for f in FILES)


def artifact_dir(name: str) -> Path:
    """The store folder of a catalog name (validated: it cannot point outside the store)."""
    return models_dir() / check_catalog_name(name)


@contextlib.contextmanager
def locked(name: str, timeout: float = -1) -> Iterator[None]:
    """Hold the writer's lock of ``name`` (blocks until the current holder is done)."""
    from filelock import FileLock, Timeout

    locks = home() / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(locks / f"{check_catalog_name(name)}.lock"), timeout=timeout)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        # Held by a live process (a dead one's lock is released by the OS): say why we wait.
        log.warning("waiting for another zoo process to finish writing %s", name)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def staging(final: Path) -> Iterator[Path]:
    """A fresh folder beside ``final`` to write into; removed again if the block fails."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f"{STAGING_PREFIX}{final.name}-{_suffix()}"
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def publish(tmp: Path, final: Path) -> Path:
    """Move a finished staging folder to ``final`` atomically, replacing what was there."""
    # SIGKILL cannot lose written data, but a power cut could: the files reach the disk
    # before their folder gets its final name.
    for file in tmp.iterdir():
        fsync(file)
    faults.point("publish")
    old = None
    if final.exists() or final.is_symlink():
        old = final.parent / f"{TRASH_PREFIX}{final.name}-{_suffix()}"
        os.replace(final, old)
        # A kill here leaves no folder under the final name, only the old one in the
        # trash: ``clean_leftovers`` puts it back.
        faults.point("publish-swap")
    os.replace(tmp, final)
    fsync(final.parent)
    if old is not None:
        if old.is_symlink():  # a link in the store is replaced, its target never touched
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    return final


def clean_leftovers(final: Path) -> None:
    """Remove staging and trash folders that a killed writer of ``final`` left behind.

    Call it only while holding the lock of ``final``'s name: then no live writer owns them.
    A writer killed between the two renames of :func:`publish` left the previous artifact
    in the trash and nothing under ``final``: that artifact is moved back, so nothing is lost.
    """
    if not final.parent.is_dir():
        return
    trash = _leftovers_of(final, TRASH_PREFIX)
    # Only a complete one goes back (an interrupted removal leaves an incomplete one), and
    # the newest: files are never written into a trash folder, so its time is its own.
    whole = sorted((p for p in trash if not p.is_symlink() and is_complete(p)),
                   key=lambda p: p.stat().st_mtime)
    if whole and not (final.exists() or final.is_symlink()):
        os.replace(whole[-1], final)
        fsync(final.parent)
        trash.remove(whole[-1])
    for leftover in [*trash, *_leftovers_of(final, STAGING_PREFIX)]:
        if leftover.is_symlink():  # planted, not ours: remove the link, never its target
            leftover.unlink()
        else:
            shutil.rmtree(leftover, ignore_errors=True)


def _leftovers_of(final: Path, prefix: str) -> list[Path]:
    """The ``prefix`` folders of ``final`` exactly: those of ``NAME-x`` (another name, with
    its own lock and maybe a live writer) share the glob ``NAME-*`` but not the suffix."""
    start = f"{prefix}{final.name}-"
    return [p for p in final.parent.glob(f"{start}*")
            if len(p.name) == len(start) + SUFFIX_LEN and _is_hex(p.name[len(start):])]


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def leftovers(directory: Path | None = None) -> list[Path]:
    """Staging and trash folders in ``directory`` (default: the models folder) that killed
    writers left behind. They never carry a final name; the next writer of the name removes them."""
    directory = models_dir() if directory is None else directory
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.startswith((STAGING_PREFIX, TRASH_PREFIX)))


def _suffix() -> str:
    return uuid.uuid4().hex[:SUFFIX_LEN]


def fsync(path: Path) -> None:
    """Flush a file, or a folder's entries, to disk (best effort: some file systems refuse)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
