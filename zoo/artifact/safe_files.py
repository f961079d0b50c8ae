"""Files of an artifact folder that are safe to read, and strict JSON for ``--json`` output.

An artifact folder may come from a stranger (a download, a shared disk, a tarball). A
symbolic link in it can point anywhere: ``README.md`` at ``~/secret.env`` would be uploaded
inside the model card by ``zoo push``, ``history.json`` at ``/proc/self/pagemap`` would make
``zoo verify`` hash an endless file. So every file zoo reads from an artifact folder goes
through :func:`artifact_file` first: it must stay inside the folder once links are followed
(or, for a snapshot of huggingface_hub's cache, inside its repository's blobs, which its files
link to), and be a regular file. A FIFO or a device would block a read forever; a folder is no file.
"""

from __future__ import annotations

import math
import os
import stat
from pathlib import Path
from typing import Any

from zoo.errors import ArtifactError


def _inside(real: Path, folder: Path) -> bool:
    """Whether ``real`` (a resolved path) lies where the files of ``folder`` may: in the
    folder itself or, for a snapshot folder of huggingface_hub's cache
    (``REPO/snapshots/COMMIT/``, whose files link to ``../../blobs/HASH``), in that
    repository's ``blobs`` folder, itself no link."""
    home = folder.resolve()
    if real.is_relative_to(home):
        return True
    blobs = home.parent.parent / "blobs"
    return (home.parent.name == "snapshots" and blobs.is_dir() and not blobs.is_symlink()
            and real.is_relative_to(blobs))


def artifact_file(folder: str | os.PathLike, name: str, *, regular: bool = True) -> Path:
    """``folder / name``, refused with an :class:`ArtifactError` naming it if it leads out of
    the artifact (a symbolic link to elsewhere) or, with ``regular``, is not a regular file.

    A path that does not exist is returned as it is: whether a missing file is an error is
    the caller's decision (a missing model card is only a warning). Callers with their own
    message for a file that is not regular pass ``regular=False``.
    """
    folder = Path(folder)
    path = folder / name
    if not os.path.lexists(path):
        return path
    real = path.resolve()
    if not _inside(real, folder):
        raise ArtifactError(f"{path} is a symbolic link to {real}, outside the artifact; "
                            "zoo reads no file outside an artifact folder")
    if not regular:
        return path
    try:
        mode = os.stat(real).st_mode
    except OSError:  # a dangling link: as good as missing
        return path
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "not a regular file"
        raise ArtifactError(f"{path} is {kind}; an artifact holds regular files only")
    return path


def read_card(folder: str | os.PathLike, name: str = "README.md") -> str | None:
    """The text of the model card ``folder / name`` (None when there is none), checked with
    :func:`artifact_file`; a card that is not UTF-8 is an error naming it."""
    path = artifact_file(folder, name)
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path} is not UTF-8 text (byte {exc.start}); fix it, or delete "
                            "it and zoo writes a new model card") from None
    except OSError as exc:
        raise ArtifactError(f"cannot read {path}: {exc.strerror or exc}") from None


def strict_json(value: Any) -> Any:
    """``value`` with every float that is NaN or infinite replaced by None, so that
    ``json.dumps(..., allow_nan=False)`` writes strict JSON: a bare ``NaN`` is no JSON, and a
    standard error of one example has no value."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value
