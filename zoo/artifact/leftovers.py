"""Staging folders that a killed writer left beside a destination outside the store.

In the store, the writer of a name holds the name's lock, so the next writer knows that
every ``.staging-NAME-*`` folder it finds is a dead writer's (``store.clean_leftovers``).
``zoo train -o out`` and ``zoo.save(model, "out")`` write beside ``out``, where no name lock
exists: a ``.staging-out-<hex>`` folder (a whole model) left by a SIGKILL stayed forever.

So every staging folder is locked by its own writer while it exists: ``flock`` on the
folder itself, which the kernel releases when the writer dies, however it dies. The next
writer of the same destination removes the staging folders whose lock it can take (their
writers are gone), and, when no live writer is left, the trash of an interrupted
replacement too (``store.staging``), putting a complete previous artifact back if nothing
has its name. A live writer's folder is never touched.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from pathlib import Path


def hold(folder: Path) -> int:
    """Lock ``folder`` (just created by this process) as a live writer's; returns the file
    descriptor that holds the lock, to :func:`release` when the writing is over."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise
    return fd


def release(fd: int) -> None:
    os.close(fd)  # closing the last descriptor releases the lock


def abandoned(folder: Path) -> bool:
    """Whether no live process holds ``folder``'s writer lock (a planted link: never ours,
    and never followed, so it counts as abandoned and is unlinked)."""
    if folder.is_symlink():
        return True
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False  # gone already, or unreadable: leave it
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    finally:
        os.close(fd)


def remove_abandoned(folders: list[Path]) -> bool:
    """Remove those of the staging ``folders`` (of one destination) whose writers are gone;
    returns whether a live writer's folder remains (then its replacement may be under way,
    and the trash of that destination is left alone)."""
    live = False
    for folder in folders:
        if not abandoned(folder):
            live = True
        elif folder.is_symlink():  # planted: the link goes, never its target
            folder.unlink()
        else:
            shutil.rmtree(folder, ignore_errors=True)
    return live
