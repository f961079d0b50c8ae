"""Where an artifact may be written outside the store, so that writing one never destroys
what is not a zoo artifact.

Publishing renames a finished staging folder over the destination and deletes what was
there. That is right for a stored model being rebuilt, and wrong for anything a user keeps:
a folder of their own files, the data being trained on, a file, or the store itself. So a
destination given by the user (``zoo train -o``, ``zoo.save``) may be a new path or an
empty folder; an existing zoo artifact is replaced only when asked (``--force``,
``overwrite=True``); everything else is refused before any work, with nothing changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from zoo.artifact.extras import RESERVED
from zoo.artifact.manifest import read_config
from zoo.artifact.store import home, shown
from zoo.errors import ZooError


class DestinationError(ZooError):
    """An artifact's destination holds something that writing there would destroy."""


def check_destination(path: str | os.PathLike, *, overwrite: bool = False,
                      reading: Iterable[str | os.PathLike] = ()) -> Path:
    """Refuse ``path`` as an artifact destination unless writing there loses nothing.

    ``reading`` are the files or folders the run reads (its data): the destination may not
    be one of them, hold one, or lie inside one. Returns ``path`` with ``~`` expanded.
    """
    path = Path(path).expanduser()
    where = Path(os.path.abspath(path))
    real = Path(os.path.realpath(path))
    _refuse_store(path, where, real)
    for source in reading:
        _refuse_data(path, real, Path(os.path.realpath(Path(source).expanduser())))
    if path.is_symlink():
        raise DestinationError(f"{shown(path)} is a symbolic link; refusing to replace it "
                               "(nothing was changed): give the folder itself, or a new path")
    if not path.exists():
        return path
    if not path.is_dir():
        raise DestinationError(f"{shown(path)} is a file, not an artifact folder; refusing to "
                               "replace it (nothing was changed): choose a new or empty folder")
    try:
        entries = sorted(p.name for p in path.iterdir())
    except OSError as exc:
        raise DestinationError(f"cannot read {shown(path)}: {exc.strerror or exc}") from None
    if not entries:
        return path
    artifact_files = _artifact_files(path)
    if artifact_files is None:
        raise DestinationError(
            f"{shown(path)} is a folder that is not a zoo artifact (it holds {_few(entries)}); "
            "refusing to write there (nothing was changed): choose a new or empty folder")
    others = [name for name in entries if name not in artifact_files]
    if others:
        raise DestinationError(
            f"{shown(path)} holds a zoo artifact and other files ({_few(others)}) that "
            "replacing it would delete; move them away or choose another folder "
            "(nothing was changed)")
    if not overwrite:
        raise DestinationError(f"{shown(path)} already holds a zoo artifact; pass --force "
                               "(overwrite=True in Python) to replace it")
    return path


def _refuse_store(path: Path, where: Path, real: Path) -> None:
    store = Path(os.path.realpath(home()))
    for candidate in (where, real):
        if candidate == store or candidate.is_relative_to(store) or store.is_relative_to(candidate):
            raise DestinationError(
                f"{shown(path)} is the zoo store or inside it (ZOO_HOME={shown(home())}); "
                "refusing to write there (nothing was changed): `zoo pull` and `zoo train "
                "NAME` without -o manage the store, so write your artifact elsewhere")


def _refuse_data(path: Path, real: Path, source: Path) -> None:
    if real == source or source.is_relative_to(real) or real.is_relative_to(source):
        raise DestinationError(
            f"{shown(path)} is, holds or lies inside the data being read ({shown(source)}); "
            "refusing to write there (nothing was changed): choose another output folder")


def _artifact_files(path: Path) -> set[str] | None:
    """The names of the files that make the artifact at ``path``, or None when ``path``
    holds no readable zoo artifact."""
    try:
        cfg = read_config(path)
    except ZooError:
        return None
    return {*RESERVED, *cfg.files}


def _few(names: list[str], limit: int = 3) -> str:
    shown_names = ", ".join(names[:limit])
    return shown_names if len(names) <= limit else f"{shown_names} and {len(names) - limit} more"
