"""The local store under ``$ZOO_HOME``: where artifacts live, and how they get there safely.

Every artifact is written into a staging folder beside its final place and then renamed,
so a killed process never leaves a half artifact under a real name. Writers of one name
take a file lock (``filelock``; the OS releases it when the holder dies, so a crashed
process never blocks the next one).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

from zoo import faults
from zoo.errors import StoreError
from zoo.names import check_catalog_name
from zoo.paths import home

# The files of an artifact, the layout Hugging Face tooling uses.
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
CARD = "README.md"
FILES = (CONFIG, WEIGHTS, CARD)

STAGING_PREFIX = ".staging-"
TRASH_PREFIX = ".trash-"
SUFFIX_LEN = 12  # hex digits that make a staging or trash folder's name unique

log = logging.getLogger(__name__)


def models_dir() -> Path:
    return home() / "models"


def is_complete(path: Path) -> bool:
    """Whether ``path`` holds all three files of an artifact (their contents are checked on load)."""
    return all((path / f).is_file() for f in FILES)


def holds_model(path: Path) -> bool:
    """Whether ``path`` holds the two files a model is loaded from (config and weights); a
    missing model card is rebuilt by a load, so the artifact is there without it."""
    return all((path / f).is_file() for f in (CONFIG, WEIGHTS))


def artifact_dir(name: str) -> Path:
    """The store folder of a catalog name (validated: it cannot point outside the store)."""
    return models_dir() / check_catalog_name(name)


def check_home() -> None:
    """Refuse a ``$ZOO_HOME`` (or its models folder) that exists but is not a directory: a
    store that cannot hold artifacts must not look like an empty one."""
    for path in (home(), models_dir()):
        try:
            bad = path.exists() and not path.is_dir()
        except OSError as exc:
            raise StoreError(os_error_message(exc, path, action="cannot use")) from None
        if bad:
            raise StoreError(f"the zoo store {shown(path)} is not a directory; move it away, "
                             "or set ZOO_HOME to a folder")


@contextlib.contextmanager
def locked(name: str, timeout: float = -1) -> Iterator[None]:
    """Hold the writer's lock of ``name`` (blocks until the current holder is done)."""
    from filelock import FileLock, Timeout

    check_home()
    locks = home() / "locks"
    with writing(locks):
        locks.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(locks / f"{check_catalog_name(name)}.lock"), timeout=timeout)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        # Held by a live process (a dead one's lock is released by the OS): say why we wait.
        log.warning("waiting for another zoo process to finish writing %s", name)
        lock.acquire()
    except OSError as exc:  # the lock file cannot be created (read-only store, full disk)
        raise StoreError(os_error_message(exc, locks / f"{name}.lock")) from None
    try:
        yield
    finally:
        lock.release()


@contextlib.contextmanager
def staging(final: Path, need: int = 0) -> Iterator[Path]:
    """A fresh folder beside ``final`` to write into; removed again if the block fails.

    The folder is checked first (a file is written to it, and ``need`` bytes must be free),
    so that a full or read-only disk is reported before any work, not after a training run.
    """
    from zoo.artifact import leftovers

    # What writers of ``final`` killed earlier left here goes first (a live one's stays).
    if not leftovers.remove_abandoned(_leftovers_of(final, STAGING_PREFIX)):
        clean_leftovers(final)  # no live writer: an interrupted replacement is finished
    tmp = final.parent / f"{STAGING_PREFIX}{final.name}-{_suffix()}"
    with writing(tmp):
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp.mkdir()
        held = leftovers.hold(tmp)  # released by the kernel if this process is killed
    try:
        check_writable(tmp, need)
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        leftovers.release(held)


def publish(tmp: Path, final: Path) -> Path:
    """Move a finished staging folder to ``final`` atomically, replacing what was there."""
    # SIGKILL cannot lose written data, but a power cut could: the files reach the disk
    # before their folder gets its final name.
    mode = file_mode()
    for file in tmp.iterdir():
        follow_umask(file, mode)
        fsync(file)
    faults.point("publish")
    old = None
    with writing(final):
        if final.exists() or final.is_symlink():
            old = final.parent / f"{TRASH_PREFIX}{final.name}-{_suffix()}"
            try:
                os.replace(final, old)
                # A kill here leaves no folder under the final name, only the old one in
                # the trash: ``clean_leftovers`` puts it back.
                faults.point("publish-swap")
                os.replace(tmp, final)
            except BaseException:
                # A signal (SIGINT, SIGTERM) or an error between the renames: put the old
                # artifact back before the exception goes on, so the name is never empty.
                _roll_back(old, final)
                raise
        else:
            os.replace(tmp, final)
    fsync(final.parent)
    if old is not None:
        if old.is_symlink() or not old.is_dir():  # a link's target is never touched
            old.unlink()
        else:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _roll_back(old: Path, final: Path) -> None:
    """Move ``old`` back to ``final`` unless the new artifact got there first."""
    if (old.exists() or old.is_symlink()) and not (final.exists() or final.is_symlink()):
        os.replace(old, final)
        fsync(final.parent)


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


def file_mode() -> int:
    """The mode ``open()`` gives a new file under the current umask (0644 under 022)."""
    umask = None
    with contextlib.suppress(OSError, ValueError):
        # Linux reports the umask without changing it (os.umask would, for every thread).
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    if umask is None:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def follow_umask(path: Path, mode: int | None = None) -> None:
    """Give a file we wrote the mode ``open()`` would have: libraries that write through a
    private temporary file (safetensors, ``mkstemp``) leave it 0600, which a second user of
    a shared store could not read. Links and files with other links are left alone."""
    mode = file_mode() if mode is None else mode
    with contextlib.suppress(OSError):
        st = path.lstat()
        if path.is_symlink() or not path.is_file() or st.st_nlink != 1:
            return
        if st.st_mode & 0o777 != mode:
            os.chmod(path, mode)


def check_writable(folder: Path, need: int = 0) -> None:
    """Refuse ``folder`` unless a file can be written in it and ``need`` bytes are free."""
    probe = folder / f".zoo-write-test-{_suffix()}"
    with writing(folder):
        with open(probe, "wb") as f:
            f.write(b"zoo")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    if need > 0:
        try:
            free = shutil.disk_usage(folder).free
        except OSError:  # no figure to go by: the write itself will tell
            return
        if free < need:
            raise StoreError(
                f"not enough space in {shown(folder.parent)}: {_mb(free)} free, about "
                f"{_mb(need)} needed; {_advice(errno.ENOSPC, folder)}")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def shown(path: Path | str, limit: int = 160) -> str:
    """``path`` for a one-line message: very long paths keep their two ends."""
    text = str(path)
    return text if len(text) <= limit else f"{text[:limit // 2 - 2]}...{text[-(limit // 2 - 1):]}"


def _in_store(path: Path | str | None) -> bool:
    if path is None:
        return False
    with contextlib.suppress(OSError, ValueError):
        return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(home()))
    return False


def _advice(code: int | None, path: Path | str | None) -> str | None:
    """What to do about an OS error on ``path`` (None when there is nothing general to say)."""
    inside = _in_store(path)
    where = ("or set ZOO_HOME to a folder on another disk" if inside
             else "or write somewhere else")
    if code in (errno.ENOSPC, errno.EDQUOT):
        return f"free some space, {where}"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return (f"make it writable, {where}" if inside
                else "check its permissions, or use another path")
    if code == errno.ENAMETOOLONG:
        return ("the path is too long: set ZOO_HOME to a shorter folder" if inside
                else "the path is too long: use a shorter one")
    if code in (errno.ENOTDIR, errno.EEXIST):
        return "a file is in the way of a folder: move it, " + where
    return None


def os_error_message(exc: BaseException, path: Path | str | None = None,
                     action: str | None = "cannot write") -> str:
    """One line for an OS error: what failed (``action``), on which path, what to do."""
    code = getattr(exc, "errno", None)
    if path is None:
        path = getattr(exc, "filename", None)
    reason = getattr(exc, "strerror", None) or " ".join(str(exc).split())
    if code is None:  # a library's error with only text ("No space left on device (os error 28)")
        for candidate in (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS):
            if f"os error {candidate})" in reason or os.strerror(candidate) in reason:
                code = candidate
                break
    advice = _advice(code, path)
    if advice is None and action == "cannot write":
        advice = "check the folder, " + ("or set ZOO_HOME to another folder"
                                          if _in_store(path) else "or write somewhere else")
    text = reason if path is None else f"{shown(path)}: {reason}"
    if action:
        text = f"{action} {text}"
    return text if advice is None else f"{text}; {advice}"


@contextlib.contextmanager
def writing(path: Path | str) -> Iterator[None]:
    """Turn an OS error raised while writing ``path`` (also one from safetensors, which
    names no path) into a :class:`StoreError` that names the path and what to do."""
    try:
        yield
    except StoreError:
        raise
    except OSError as exc:
        raise StoreError(os_error_message(exc, exc.filename or path)) from None
    except Exception as exc:
        if type(exc).__name__ != "SafetensorError":
            raise
        raise StoreError(os_error_message(exc, path)) from None
