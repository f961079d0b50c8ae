"""What a name may look like: catalog names, Hub repository ids and revisions.

Names end up in paths under ``$ZOO_HOME``; validating them here is what keeps
``zoo pull ../../etc`` from writing anywhere else.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterable
from pathlib import Path

from zoo.errors import ConfigError

CATALOG_NAME = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
# The Hub's own rule (huggingface_hub's validate_repo_id), without importing it here.
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9_])?"
REPO_ID = re.compile(f"{_REPO_PART}/{_REPO_PART}")
REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")
HUB_PREFIX = "hf-hub:"


def check_catalog_name(name: object) -> str:
    """A catalog name: lower-case letters, digits, '.', '_' and '-', at most 64 characters."""
    if not isinstance(name, str) or not CATALOG_NAME.fullmatch(name) or ".." in name:
        raise ConfigError(
            f"invalid model name {_show(name)}: use lower-case letters, digits, '.', '_' and '-' "
            "(at most 64 characters), like 'realnvp-moons'"
        )
    return name


def check_repo_id(repo: object) -> str:
    """A Hub repository id, ``ORG/REPO``."""
    if (not isinstance(repo, str) or not REPO_ID.fullmatch(repo) or ".." in repo
            or "--" in repo or repo.endswith(".git")):
        raise ConfigError(f"invalid Hub repository id {_show(repo)}: expected ORG/REPO")
    return repo


def check_revision(revision: object) -> str:
    """A branch, tag or commit hash."""
    bad = not isinstance(revision, str) or not REVISION.fullmatch(revision)
    # git's rules for ref names, as far as a path is concerned: no empty, '.'-led or
    # '.lock' component (huggingface_hub keeps refs as files named after the revision).
    if bad or ".." in revision or any(not part or part.startswith(".") or part.endswith(".lock")
                  for part in revision.split("/")):
        raise ConfigError(f"invalid revision {_show(revision)}: expected a branch, tag or commit")
    return revision


def parse_hub_name(name: str) -> tuple[str, str | None]:
    """``hf-hub:ORG/REPO[@REV]`` -> (repo id, revision or None)."""
    body = name[len(HUB_PREFIX):]
    repo, _, revision = body.partition("@")
    check_repo_id(repo)
    if "@" in name[len(HUB_PREFIX):]:
        check_revision(revision)
        return repo, revision
    return repo, None


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def unknown_name_message(what: str, name: str, known: Iterable[str]) -> str:
    """``unknown WHAT NAME``, with the closest of ``known`` suggested."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5) if len(name) < 200 else []
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    shown = repr(name) if len(name) <= 80 else repr(name[:77]) + "..."
    return f"unknown {what} {shown}{hint}"


def is_path(name: str) -> bool:
    """Whether ``name`` names an artifact directory rather than a catalog or Hub model."""
    if name.startswith(HUB_PREFIX):
        return False
    if os.sep in name or "/" in name or name.startswith((".", "~")):
        return True
    try:
        return Path(name).is_dir()
    except (OSError, ValueError):  # a name too long for a path, or with a NUL in it
        return False
