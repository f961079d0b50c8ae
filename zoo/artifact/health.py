"""Whether the artifact stored under a catalog name can be used as it is.

``zoo pull`` (and so ``load``, ``sample`` and ``eval``) returns a stored artifact without
rebuilding it. What it finds there decides what happens, and nothing is ever retrained
silently over files that are there:

- nothing under the name: the caller downloads or builds it;
- the three files, ``config.json`` readable: used as it is (the weights' hash is checked
  by every load);
- only the model card (README.md) missing: the card is rebuilt from ``config.json`` with a
  warning (it is documentation; the weights are fine);
- anything else (a damaged or missing ``config.json``, missing weights, a file where the
  folder should be): an error that says to run ``zoo pull --force NAME``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from zoo.artifact import store
from zoo.errors import ArtifactError

log = logging.getLogger(__name__)


def usable(final: Path, name: str, *, repair: bool = False) -> bool:
    """True if the artifact at ``final`` can be returned as it is; False if nothing is
    stored there, or (without ``repair``) if its model card must be rebuilt first.

    ``repair`` rebuilds a missing card; pass it only while holding the lock of ``name``.
    A damaged artifact raises an :class:`ArtifactError` naming ``zoo pull --force NAME``.
    """
    if not (final.exists() or final.is_symlink()):
        return False
    if not final.is_dir():
        raise damaged(name, final, "it is not a folder")
    missing = [f for f in (store.CONFIG, store.WEIGHTS) if not (final / f).is_file()]
    if missing:
        raise damaged(name, final, f"{' and '.join(missing)} missing")
    from zoo.artifact.io import read_config

    try:
        cfg = read_config(final)
    except (ArtifactError, OSError) as exc:
        raise damaged(name, final, " ".join(str(exc).split())) from None
    if (final / store.CARD).is_file():
        return True
    if not repair:
        return False
    rebuild_card(final, cfg)
    return True


def damaged(name: str, final: Path, problem: str) -> ArtifactError:
    return ArtifactError(f"the stored artifact of {name} ({store.shown(final)}) is damaged: "
                         f"{problem}; run `zoo pull --force {name}` to replace it")


def rebuild_card(folder: Path, cfg: object) -> None:
    """Write the model card of ``cfg`` into ``folder`` (atomically), with a warning."""
    from zoo.artifact.card import model_card

    card = folder / store.CARD
    tmp = folder / f".{store.CARD}.{os.getpid()}.tmp"
    try:
        with store.writing(card), open(tmp, "w", encoding="utf-8") as f:
            # Only the pictures that are there: the card never shows a missing file.
            present = [f for f in getattr(cfg, "files", {}) if (folder / f).is_file()]
            f.write(model_card(cfg, files=present))  # type: ignore[arg-type]
        store.fsync(tmp)
        os.replace(tmp, card)
    finally:
        tmp.unlink(missing_ok=True)
    log.warning("%s was missing; rebuilt it from %s", card, store.CONFIG)
