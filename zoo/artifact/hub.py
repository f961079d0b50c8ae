"""The Hugging Face Hub: pull artifacts by ``hf-hub:ORG/REPO[@REV]``, fetch the published
weights of catalog entries, and push artifacts.

Downloads go through ``huggingface_hub`` into its own cache (``HF_HOME`` / ``HF_HUB_CACHE``):
zoo keeps no second cache of Hub files. A pulled ``hf-hub:`` name *is* its snapshot folder in
that cache, and the folder's name is the commit it was resolved to. Catalog entries are the
exception that proves the rule: their store folder under ``$ZOO_HOME`` gets hard links to
the cached files (copies where links are impossible) plus a ``source.json`` naming the
repository and commit they came from.

Every download is checked: the weights' sha256 must match the ``weights_sha256`` of the
artifact's own ``config.json`` and, for a catalog entry, the sha256 the catalog pins.

``huggingface_hub`` reads ``HF_ENDPOINT``, ``HF_HOME``, ``HF_HUB_CACHE`` and ``HF_HUB_OFFLINE``
once, when it is imported. zoo reads them again at every call and passes them on, so that
setting them later in the same process (a notebook, a test) still takes effect.

Every failure the Hub can produce becomes a one-line :class:`~zoo.errors.HubError` that says
what to do. Tokens are never part of any message.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo.errors import ArtifactError, HubError, ZooError
from zoo.names import HUB_PREFIX, check_repo_id, check_revision, parse_hub_name

if TYPE_CHECKING:
    from zoo.artifact.io import ArtifactConfig
    from zoo.catalog import Entry

DEFAULT_REVISION = "main"
SOURCE_FILE = "source.json"
LOGIN_HINT = "run `hf auth login` or set HF_TOKEN"
COMMIT_HASH = re.compile(r"[0-9a-f]{40}")
SHORT_HASH = re.compile(r"[0-9a-f]{7,39}")

log = logging.getLogger(__name__)


class HubUnavailableError(HubError):
    """The Hub cannot be reached (network down, offline mode) and the files are not cached."""


class HubIntegrityError(HubError):
    """Downloaded weights do not have the sha256 they must have; they are refused."""


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` published: the commit and the sha256 to pin in ``registry.yaml``."""

    repo: str
    commit: str
    commit_url: str
    sha256: str


# -- where the Hub and its cache are -------------------------------------------------------


def endpoint() -> str:
    """The Hub's base URL: ``HF_ENDPOINT`` as it is set now, else huggingface_hub's default."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def cache_dir() -> Path:
    """huggingface_hub's cache folder, resolved the way huggingface_hub resolves it."""
    from huggingface_hub import constants

    for variable in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(variable):
            return _expand(os.environ[variable])
    if os.environ.get("HF_HOME"):
        return _expand(os.environ["HF_HOME"]) / "hub"
    return Path(constants.HF_HUB_CACHE)


def offline_mode(offline: bool = False) -> bool:
    """Whether to stay off the network: ``offline``, or ``HF_HUB_OFFLINE`` set to a true value."""
    from huggingface_hub import constants

    return offline or constants.is_offline_mode() or _truthy(os.environ.get("HF_HUB_OFFLINE"))


# -- pulling --------------------------------------------------------------------------------


def pull(name: str, *, force: bool = False, offline: bool = False,
         progress: bool | None = None) -> Path:
    """Download the artifact ``hf-hub:ORG/REPO[@REV]`` (``REV`` defaults to ``main``) into the
    Hugging Face cache and return its snapshot folder, whose name is the resolved commit.

    Offline (``offline`` or ``HF_HUB_OFFLINE=1``) it is served from the cache without any
    network call. ``force`` downloads the files again. The weights are checked against the
    sha256 recorded in ``config.json``; a mismatch is refused with :class:`HubIntegrityError`.
    """
    repo, revision = parse_hub_name(name)
    snapshot, _, _ = _fetch_verified(repo, revision or DEFAULT_REVISION, force=force,
                                     offline=offline, progress=progress)
    return snapshot


def cached_path(name: str) -> Path | None:
    """The cached snapshot of ``hf-hub:ORG/REPO[@REV]`` with all artifact files, found without
    any network call; None if it is not cached. A short commit hash matches a unique prefix."""
    repo, revision = parse_hub_name(name)
    return _cached_snapshot(repo, revision or DEFAULT_REVISION)


def fetch_entry(entry: Entry, directory: Path, *, offline: bool = False,
                progress: bool | None = None) -> bool:
    """Fill ``directory`` with ``entry``'s published artifact from the first of its Hub
    sources that can be had; return False if none can (the caller then builds the recipe).

    The artifact's files (its three, and the extra files its config lists that the
    repository has) are hard-linked from the Hugging Face cache (copied where links are
    impossible) and ``source.json`` records the repository, revision and commit.
    Weights whose sha256 is not the one the entry pins raise :class:`HubIntegrityError`
    (naming both hashes) instead of falling back: that is a wrong catalog or a tampered
    repository, and building something else under the name would hide it.
    """
    from zoo.artifact.io import FILES

    reasons = []
    for source in entry.sources:
        try:
            snapshot, cfg, _ = _fetch_verified(source.repo, source.revision, force=False,
                                               offline=offline, pinned=source.sha256,
                                               what=entry.name, progress=progress)
        except HubIntegrityError:
            raise
        except HubError as exc:
            reasons.append(str(exc))
            continue
        if cfg.family != entry.family:
            raise HubError(f"{entry.name}: {_hub_name(source.repo, source.revision)} holds a "
                           f"{cfg.family!r} model, but the catalog entry is a {entry.family!r} "
                           "model; fix the entry's sources")
        for file in FILES:
            _link_or_copy(snapshot / file, directory / file)
        for file in cfg.files:  # pictures and history, where the repository has them
            if (snapshot / file).is_file():
                _link_or_copy(snapshot / file, directory / file)
        write_source(directory, {"kind": "hub", "repo": source.repo,
                                 "revision": source.revision, "commit": snapshot.name})
        return True
    if reasons:
        log.warning("%s: published weights unavailable (%s); building it from its recipe",
                    entry.name, "; ".join(reasons))
    return False


def write_source(directory: Path, source: dict[str, Any]) -> None:
    """Write the ``source.json`` sidecar saying where an artifact came from."""
    (directory / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n", encoding="utf-8")


def source_of(name: str, path: Path) -> dict[str, Any] | None:
    """Where the artifact of ``name`` at ``path`` came from, if the Hub had a part in it:
    the repository and commit of an ``hf-hub:`` name's snapshot, or a ``source.json``."""
    if name.startswith(HUB_PREFIX):
        repo, revision = parse_hub_name(name)
        return {"kind": "hub", "repo": repo, "revision": revision or DEFAULT_REVISION,
                "commit": path.name}
    try:
        data = json.loads((path / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fetch_verified(repo: str, revision: str, *, force: bool, offline: bool,
                    pinned: str | None = None, what: str | None = None,
                    progress: bool | None = None) -> tuple[Path, ArtifactConfig, str]:
    """The snapshot of ``repo@revision``, its config and its weights' sha256, once the
    weights match ``config.json`` and ``pinned``. A mismatch found in the cache is downloaded
    once more (a spoiled cache file is repaired); a mismatch in what the Hub serves is refused."""
    snapshot = _snapshot(repo, revision, force=force, offline=offline, progress=progress)
    cfg, actual, problem = _inspect(snapshot, repo, revision, pinned, what)
    corrupt = actual != cfg.weights_sha256
    if corrupt and not force and not offline_mode(offline):
        log.info("%s; downloading it again", problem)
        snapshot = _snapshot(repo, revision, force=True, offline=offline, progress=progress)
        cfg, actual, problem = _inspect(snapshot, repo, revision, pinned, what)
        if actual != cfg.weights_sha256:
            problem = f"{problem} (twice: the files on the Hub are inconsistent)"
    elif corrupt and offline_mode(offline):
        problem = f"{problem} (go online and run `zoo pull --force` to download it again)"
    if problem is not None:
        raise HubIntegrityError(problem)
    return snapshot, cfg, actual


def _inspect(snapshot: Path, repo: str, revision: str, pinned: str | None,
             what: str | None) -> tuple[ArtifactConfig, str, str | None]:
    """The config and weights' sha256 of ``snapshot``, and what is wrong with them, if anything."""
    from zoo.artifact import io as artifacts

    name = _hub_name(repo, revision)
    try:
        cfg = artifacts.read_config(snapshot)
    except ZooError as exc:
        raise HubError(f"{name} is not a zoo artifact: {exc}") from None
    actual = artifacts.sha256_file(snapshot / artifacts.WEIGHTS)
    where = f"{name} (commit {snapshot.name[:12]})"
    if pinned is not None and actual != pinned:
        return cfg, actual, (
            f"{what or name}: the weights of {where} have sha256 {actual}, but the catalog "
            f"pins {pinned}; refused, nothing was stored")
    if actual != cfg.weights_sha256:
        return cfg, actual, (
            f"the download of {where} is corrupted: {artifacts.WEIGHTS} has sha256 {actual}, "
            f"its config.json records {cfg.weights_sha256}; refused")
    return cfg, actual, None


def _snapshot(repo: str, revision: str, *, force: bool, offline: bool,
              progress: bool | None) -> Path:
    """The snapshot folder of ``repo@revision`` with every artifact file, downloading what
    is missing (or everything, with ``force``) unless offline."""
    from zoo.artifact.extras import HUB_PATTERNS
    from zoo.artifact.io import FILES

    check_repo_id(repo)
    check_revision(revision)
    name = _hub_name(repo, revision)
    if offline_mode(offline):
        if force:
            raise HubError(f"cannot download {name} again in offline mode: drop --force, "
                           "or go online (unset HF_HUB_OFFLINE, drop --offline)")
        found = _cached_snapshot(repo, revision)
        if found is None:
            why = "--offline" if offline else "HF_HUB_OFFLINE is set"
            raise HubUnavailableError(
                f"{name} is not in the Hugging Face cache ({cache_dir()}) and zoo is offline "
                f"({why}): pull it once with network access")
        return found
    pinned = COMMIT_HASH.fullmatch(revision) is not None
    if pinned and not force:
        # A commit never changes: once cached there is nothing to ask the Hub.
        found = _cached_snapshot(repo, revision)
        if found is not None:
            return found
    from huggingface_hub import HfApi, snapshot_download

    with _translated(name, repo=repo, revision=revision), _progress_bars(progress):
        if pinned:
            # For a commit, huggingface_hub lists the files with retries and backoff (about
            # 25 s when the network is down); one plain request first fails fast instead,
            # and names a missing commit properly.
            HfApi(endpoint=endpoint(), library_name="zoo", library_version=_version()).repo_info(
                repo, revision=revision, files_metadata=False)
        folder = snapshot_download(
            repo, revision=revision, cache_dir=cache_dir(), endpoint=endpoint(),
            allow_patterns=[*FILES, *HUB_PATTERNS], force_download=force,
            library_name="zoo", library_version=_version())
    snapshot = Path(folder)
    missing = [f for f in FILES if not (snapshot / f).is_file()]
    if missing:
        raise HubError(f"{name} (commit {snapshot.name[:12]}) is not a zoo artifact: it has no "
                       f"{', '.join(missing)} (a zoo artifact holds {', '.join(FILES)})")
    return snapshot


def _cached_snapshot(repo: str, revision: str) -> Path | None:
    """Look ``repo@revision`` up in huggingface_hub's cache layout (``models--ORG--REPO/
    refs/REVISION`` holds a commit, ``snapshots/COMMIT/`` its files) without importing the
    download machinery, which alone costs more than a cached pull should take."""
    from zoo.artifact.io import FILES

    folder = cache_dir() / f"models--{repo.replace('/', '--')}"
    commit = revision if COMMIT_HASH.fullmatch(revision) else _read_ref(folder, revision)
    snapshot = folder / "snapshots" / commit if commit else None
    if (snapshot is None or not snapshot.is_dir()) and SHORT_HASH.fullmatch(revision):
        # A short commit hash is resolved only by the Hub, which offline we cannot ask: a
        # unique prefix among the cached commits is the commit that was meant.
        snapshots = folder / "snapshots"
        matches = sorted(snapshots.glob(f"{revision}*")) if snapshots.is_dir() else []
        snapshot = matches[0] if len(matches) == 1 else None
    if snapshot is None or not all((snapshot / f).is_file() for f in FILES):
        return None
    return snapshot


def _read_ref(folder: Path, revision: str) -> str | None:
    try:
        commit = (folder / "refs" / revision).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return commit if COMMIT_HASH.fullmatch(commit) else None


# -- pushing --------------------------------------------------------------------------------


def push(path: str | os.PathLike, *, repo: str, revision: str | None = None,
         private: bool = False, message: str | None = None,
         token: str | None = None) -> PushResult:
    """Publish the artifact directory ``path`` to the Hub repository ``repo``, creating it if
    needed, on branch ``revision``. (``zoo.api.push`` takes names too: it pulls them first.)

    The model card is completed from the config and metrics before upload, and the extra
    files (pictures, training history) the config lists go with it. The token is
    ``token``, else the one huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``).
    """
    from huggingface_hub import HfApi, get_token

    from zoo.artifact import io as artifacts
    from zoo.artifact.card import complete_card

    check_repo_id(repo)
    if revision is not None:
        check_revision(revision)
    token = token or get_token()
    if not token:
        raise HubError(f"pushing to the Hub needs a token with write access: {LOGIN_HINT}")
    path = Path(path).expanduser()
    if not path.is_dir():
        raise ArtifactError(f"no artifact at {path}")
    cfg = artifacts.read_config(path)
    from zoo.artifact.safe_files import artifact_file, read_card

    # Nothing from outside the artifact is read or uploaded; no FIFO or /proc file is hashed.
    actual = artifacts.sha256_file(artifact_file(path, artifacts.WEIGHTS))
    if actual != cfg.weights_sha256:
        raise ArtifactError(f"{path / artifacts.WEIGHTS} is corrupted (sha256 {actual}, "
                            f"config.json records {cfg.weights_sha256}); not publishing it")
    extras = _extras_to_push(path, cfg)  # each checked by artifacts.check_files
    existing = read_card(path, artifacts.CARD)  # a link out of it refused, not UTF-8 named
    hub = HfApi(endpoint=endpoint(), token=token, library_name="zoo", library_version=_version())
    target = f"{repo}@{revision or DEFAULT_REVISION}"
    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        folder = Path(tmp)
        for file in (artifacts.CONFIG, artifacts.WEIGHTS, *extras):
            _link_or_copy(path / file, folder / file)
        (folder / artifacts.CARD).write_text(complete_card(existing, cfg, repo=repo,
                                                           files=extras), encoding="utf-8")
        with _translated(f"hf-hub:{target}", repo=repo, revision=revision, token=token,
                         pushing=True):
            hub.create_repo(repo_id=repo, repo_type="model", private=private, exist_ok=True)
            if revision is not None and revision != DEFAULT_REVISION:
                hub.create_branch(repo_id=repo, repo_type="model", branch=revision,
                                  exist_ok=True)
            info = hub.upload_folder(
                repo_id=repo, repo_type="model", folder_path=folder, revision=revision,
                allow_patterns=[*artifacts.FILES, *extras],
                commit_message=message or f"Upload {cfg.name or path.name} with zoo {_version()}")
    return PushResult(repo=repo, commit=info.oid, commit_url=info.commit_url, sha256=actual)


def _extras_to_push(path: Path, cfg: ArtifactConfig) -> list[str]:
    """The extra files (pictures, history) to publish with the artifact at ``path``: those
    its config lists and it has. One whose sha256 is not the listed one is refused, as
    corrupted weights are; a missing one is left out (the card then does not show it)."""
    from zoo.artifact import io as artifacts

    problems, warnings = artifacts.check_files(path, cfg)
    if problems:
        raise ArtifactError(f"{problems[0]}; not publishing it")
    for warning in warnings:
        log.warning("%s: publishing the artifact without it", warning)
    return [name for name in sorted(cfg.files) if (path / name).is_file()]


# -- errors ---------------------------------------------------------------------------------


@contextlib.contextmanager
def _translated(name: str, *, repo: str, revision: str | None, token: str | None = None,
                pushing: bool = False) -> Iterator[None]:
    """Turn huggingface_hub's and the network's exceptions into one-line HubErrors."""
    try:
        yield
    except ZooError:
        raise
    except Exception as exc:
        error = _translate(exc, name, repo=repo, revision=revision, pushing=pushing)
        if error is None:
            raise
        error = type(error)(_scrub(str(error), token))
        # With a token in play the original exception (whose text a server may fill) is not
        # chained: not even a --debug traceback may show the token.
        raise error from (None if token else exc)


def _translate(exc: BaseException, name: str, *, repo: str, revision: str | None,
               pushing: bool) -> HubError | None:
    """The HubError that says what to do about ``exc``; None for exceptions of other kinds."""
    import httpx2
    from huggingface_hub import errors as hf

    if isinstance(exc, hf.GatedRepoError):
        return HubError(f"{repo} is gated: accept its conditions at {endpoint()}/{repo}, then "
                        f"{LOGIN_HINT} with that account")
    if isinstance(exc, hf.RevisionNotFoundError):
        return HubError(f"revision {revision!r} not found in {repo}: name a branch, tag or "
                        f"commit that exists (see {endpoint()}/{repo}/tree/main)")
    if isinstance(exc, hf.RepositoryNotFoundError):
        return HubError(f"Hub repository {repo} not found, or it is private and you have no "
                        f"access: check the name, or {LOGIN_HINT} with an account that can "
                        "read it")
    if isinstance(exc, hf.OfflineModeIsEnabled):
        return HubUnavailableError(f"{name} is not cached and HF_HUB_OFFLINE is set: pull it "
                                   "once with network access")
    if isinstance(exc, hf.LocalEntryNotFoundError):
        # huggingface_hub's answer when the Hub could not tell it what to download and
        # nothing is cached; the Hub's own answer, when there was one, says more.
        cause = exc.__cause__
        if isinstance(cause, hf.HfHubHTTPError):
            return _translate(cause, name, repo=repo, revision=revision, pushing=pushing)
        return HubUnavailableError(
            f"cannot reach the Hub at {endpoint()} and {name} is not in the Hugging Face "
            "cache: check your connection (and HF_ENDPOINT), or try again later")
    if isinstance(exc, hf.HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else None
        if status == 401:
            text = (f"the Hub refused your credentials (401): {LOGIN_HINT} with a valid token"
                    if pushing else f"{repo} needs you to log in (401): {LOGIN_HINT}")
        elif status == 403:
            text = (f"your token cannot write to {repo} (403): {LOGIN_HINT} with a token that "
                    "has write access to it" if pushing
                    else f"access to {repo} is forbidden (403): {LOGIN_HINT} with an account "
                    "that has access")
        elif status == 404 and not pushing:
            text = (f"{name} not found on the Hub (404): check the repository id and the "
                    "revision")
        elif status is not None and status >= 500:
            text = f"the Hub at {endpoint()} failed ({status}) on {name}: try again later"
        else:
            text = f"the Hub refused {'the upload to ' if pushing else ''}{name} ({status})"
        server = " ".join((exc.server_message or "").split())
        return HubError(f"{text} [{server}]" if server else text)
    if isinstance(exc, httpx2.TransportError):
        return HubUnavailableError(
            f"cannot reach the Hub at {endpoint()} ({type(exc).__name__}): check your "
            "connection (and HF_ENDPOINT), or try again later")
    if isinstance(exc, hf.HFValidationError):
        return HubError(f"invalid Hub request for {name}: {exc}")
    return None


def _scrub(message: str, token: str | None) -> str:
    """``message`` on one line, with the token (should anything ever echo it) masked."""
    message = " ".join(message.split())
    return message.replace(token, "***") if token else message


# -- small helpers --------------------------------------------------------------------------


@contextlib.contextmanager
def _progress_bars(progress: bool | None) -> Iterator[None]:
    """huggingface_hub's progress bars off for the block when ``progress`` is False."""
    from huggingface_hub.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    if progress is not False or are_progress_bars_disabled():
        yield
        return
    disable_progress_bars()
    try:
        yield
    finally:
        enable_progress_bars()


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link ``src`` (a cache symlink is followed to its blob) at ``dst``, else copy it.

    huggingface_hub replaces blobs by renaming, never by writing into them, so a link
    cannot be changed behind the store's back.
    """
    real = src.resolve()
    try:
        os.link(real, dst)
    except OSError:
        shutil.copyfile(real, dst)


def _hub_name(repo: str, revision: str | None) -> str:
    return f"{HUB_PREFIX}{repo}" + (f"@{revision}" if revision else "")


def _expand(value: str) -> Path:
    return Path(os.path.expandvars(os.path.expanduser(value)))


def _truthy(value: str | None) -> bool:
    return (value or "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("genzoo")
    except metadata.PackageNotFoundError:
        return "unknown"
