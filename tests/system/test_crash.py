"""Crash safety: real ``zoo`` processes SIGKILLed at several points leave the store valid (no
half artifact under a final name, nothing that was there lost) and the next run completes.

The points: in the middle of recipe training (``zoo pull``); right after the weights file
is written, the rest of the artifact not yet; between the two renames that replace a stored
artifact (``zoo pull --force``); with a new artifact complete but not yet renamed over a
stored one (``zoo train``); and half way through the download of the weights of a catalog
entry from a real Hub server on loopback (olah). ``ZOO_FAULT_PAUSE`` (zoo/faults.py) parks a
process at a named point; the download is paused inside huggingface_hub by a driver script.

All victims run at once, each with its own ``ZOO_HOME``; the next runs happen in this
process. (``zoo push`` writes nothing locally: its atomicity is the Hub's commit.)
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import faultkit
import pytest
from faultkit import HALF_DOWNLOAD_DRIVER, Proc, fault_line, start_zoo, store_artifacts, zoo_env
from hubserver import hub_server, tiny_artifacts  # noqa: F401  (fixtures, used if olah is there)

from zoo import api
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.plugin import registry as plugin_registry

STEPS = 300


@dataclass
class Victim:
    """One killed process: where it ran, what it held when killed."""

    label: str
    home: Path
    args: list[str]
    proc: Proc | None = None
    hf_home: Path | None = None
    after_kill: dict[str, list[str]] = field(default_factory=dict)
    returncode: int | None = None


def snapshot(victim: Victim) -> None:
    """What the store held right after the kill."""
    victim.after_kill = {
        "final": store_artifacts(victim.home),
        "hidden": sorted(p.name for p in (victim.home / "models").glob(".*"))
        if (victim.home / "models").is_dir() else [],
    }


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture(scope="module")
def seed_artifact(tiny_artifacts) -> Path:  # noqa: F811
    """A valid artifact of the tiny config, copied into the homes that start with one."""
    return tiny_artifacts["A"]


@pytest.fixture(scope="module")
def killed(tmp_path_factory, seed_artifact, request) -> dict[str, Victim]:
    """Start every victim, wait until each reaches its point, SIGKILL it, note the store."""
    root = tmp_path_factory.mktemp("crash")
    short = faultkit.tiny_registry(root / "short.yaml", steps=STEPS)
    # A recipe that cannot finish during the test: the kill surely lands in training.
    endless = faultkit.tiny_registry(root / "endless.yaml", steps=1_000_000)
    plan = [  # label, args, registry, fault point, seeded with an artifact
        # --yes: the endless recipe's estimate is hours, which pull refuses without it.
        ("training", ["pull", "tiny", "-q", "--yes"], endless, "train-start", False),
        ("weights-written", ["pull", "tiny", "-q"], short, "weights-written", False),
        ("publish-swap", ["pull", "tiny", "--force", "-q"], short, "publish-swap", True),
        ("train-over-existing", ["train", "tiny", "-q"], short, "publish", True),
    ]
    victims: dict[str, Victim] = {}
    server = _hub_server(request)  # before the victims load the CPUs: olah starts promptly
    try:
        for label, args, registry, point, seeded in plan:
            home = root / label
            if seeded:
                shutil.copytree(seed_artifact, home / "models" / "tiny")
            victim = Victim(label, home, args)
            seconds = 0 if label == "training" else 300  # training: announce, keep going
            victim.proc = start_zoo(args, zoo_env(home, registry), pause=point, seconds=seconds)
            victims[label] = victim
        hub = _start_hub_victims(root, server, victims) if server is not None else []
        for label, _, _, point, _ in plan:
            victim = victims[label]
            victim.proc.wait_for(fault_line(point))
            if label == "training":
                time.sleep(1.5)  # well into the endless recipe
            victim.returncode = victim.proc.kill()
            snapshot(victim)
        for victim in hub:
            victim.proc.wait_for(fault_line("hub-download"))
            victim.returncode = victim.proc.kill()
            snapshot(victim)
    finally:  # never leave a paused process behind, whatever failed
        for victim in victims.values():
            if isinstance(victim, Victim) and victim.proc is not None:
                victim.proc.kill()
    return victims


def _hub_server(request):
    """The local Hub server, or None when olah is not installed (its tests then skip)."""
    try:
        return request.getfixturevalue("hub_server")
    except pytest.skip.Exception:
        return None


def _start_hub_victims(root: Path, server, victims: dict[str, Victim]) -> list[Victim]:
    """The two download victims: an ``hf-hub:`` name and a catalog entry with a source."""
    weights_sha = hashlib.sha256(
        (server.artifacts["B"] / "model.safetensors").read_bytes()).hexdigest()
    source = (f"    sources: [{{repo: acme/moons, revision: {server.commits['acme/moons'][-1]}, "
              f"sha256: {weights_sha}}}]\n")
    registry = faultkit.tiny_registry(root / "hub.yaml", ("tiny-hub",), steps=STEPS)
    registry.write_text(registry.read_text() + source)
    started = []
    for label, name in (("hub-entry", "tiny-hub"),):
        home = root / label
        victim = Victim(label, home, ["pull", name, "-q"], hf_home=home / "hf")
        env = zoo_env(home, registry, HF_ENDPOINT=server.url, HF_HOME=str(victim.hf_home))
        victim.proc = start_zoo([], env, argv=["-c", HALF_DOWNLOAD_DRIVER, "pull", name, "-q"])
        victims[label] = victim
        started.append(victim)
    victims["_server"] = server  # type: ignore[assignment]
    return started


def resume(victim: Victim, registry: Path, monkeypatch, call):
    """Run ``call()`` in this process against the victim's store (the next run)."""
    monkeypatch.setenv("ZOO_HOME", str(victim.home))
    monkeypatch.setenv("ZOO_REGISTRY", str(registry))
    plugin_registry.reset()
    return call()


def assert_no_half_artifact(victim: Victim) -> None:
    """Every folder under a final name is a complete, valid artifact."""
    for name in store_artifacts(victim.home):
        problems = check(victim.home / "models" / name)
        assert problems == (), (victim.label, name, problems)


@pytest.fixture
def short_registry(tmp_path) -> Path:
    return faultkit.tiny_registry(tmp_path / "short.yaml", steps=STEPS)


def test_killed_during_training(killed, short_registry, monkeypatch):
    victim = killed["training"]
    assert victim.returncode == -9
    # Killed mid-training: an empty staging folder, nothing under the final name.
    assert victim.after_kill["final"] == []
    assert len(victim.after_kill["hidden"]) == 1
    staging = victim.home / "models" / victim.after_kill["hidden"][0]
    assert list(staging.iterdir()) == []
    path = resume(victim, short_registry, monkeypatch,
                  lambda: api.pull("tiny", progress=False))
    assert check(path) == () and store.leftovers() == []
    faultkit.record("crash", "SIGKILL `zoo pull` during recipe training", 1,
                    "killed (-9); the next `zoo pull` trained and published it",
                    "after kill: no final-named folder, 1 empty staging folder; "
                    "after next run: 1 valid artifact, no leftovers")


def test_killed_while_writing_the_weights(killed, short_registry, monkeypatch):
    victim = killed["weights-written"]
    assert victim.returncode == -9
    assert victim.after_kill["final"] == [] and len(victim.after_kill["hidden"]) == 1
    staging = victim.home / "models" / victim.after_kill["hidden"][0]
    # The pictures come first, then the weights; config.json (and the card) never came.
    assert sorted(p.name for p in staging.iterdir()) == sorted(
        ["model.safetensors", "samples.png", "training.png", "history.json"])
    path = resume(victim, short_registry, monkeypatch,
                  lambda: api.pull("tiny", progress=False))
    assert check(path) == () and store.leftovers() == []
    faultkit.record("crash", "SIGKILL `zoo pull` once the weights file is written, before "
                    "config.json", 1,
                    "killed (-9); the next `zoo pull` removed the leftover and completed",
                    "after kill: no final-named folder, a staging folder with the weights "
                    "and pictures, no config.json; after next run: 1 valid artifact, no "
                    "leftovers")


def test_killed_between_the_renames_of_a_forced_pull(killed, seed_artifact, short_registry,
                                                     monkeypatch):
    """The old artifact was moved aside and the new one not yet in: nothing under the final
    name for an instant. The next pull puts the old one back; nothing was lost."""
    victim = killed["publish-swap"]
    assert victim.returncode == -9
    assert victim.after_kill["final"] == []
    assert any(h.startswith(".trash-tiny-") for h in victim.after_kill["hidden"])

    def forbid_build(*args, **kwargs):
        raise AssertionError("rebuilt although the old artifact was recoverable")

    monkeypatch.setattr(api, "fetch_or_build", forbid_build)
    path = resume(victim, short_registry, monkeypatch, lambda: api.pull("tiny"))
    assert (path / "model.safetensors").read_bytes() == (
        seed_artifact / "model.safetensors").read_bytes()
    assert check(path) == () and store.leftovers() == []
    faultkit.record("crash", "SIGKILL `zoo pull --force` between its two renames", 1,
                    "killed (-9); the next `zoo pull` restored the previous artifact without "
                    "rebuilding", "after kill: old artifact in the trash, new one in staging; "
                    "after next run: the previous artifact, byte for byte, no leftovers")


def test_killed_while_training_over_an_existing_artifact(killed, seed_artifact, short_registry,
                                                         monkeypatch):
    """Killed with the new artifact complete in staging, just before it is renamed."""
    victim = killed["train-over-existing"]
    assert victim.returncode == -9
    # The stored artifact is untouched: the new one was still in staging.
    assert victim.after_kill["final"] == ["tiny"]
    staging = [h for h in victim.after_kill["hidden"] if h.startswith(".staging-")]
    assert len(staging) == 1
    assert store.is_complete(victim.home / "models" / staging[0])
    assert_no_half_artifact(victim)
    stored = victim.home / "models" / "tiny" / "model.safetensors"
    assert stored.read_bytes() == (seed_artifact / "model.safetensors").read_bytes()
    path = resume(victim, short_registry, monkeypatch,
                  lambda: api.train("tiny", progress=False))
    assert check(path) == () and store.leftovers() == []
    faultkit.record("crash", "SIGKILL `zoo train` over a stored artifact, new one complete "
                    "but not yet renamed", 1, "killed (-9); the next `zoo train` completed",
                    "after kill: the previous artifact intact under its name; after next "
                    "run: 1 valid artifact, no leftovers")


def cache_blobs_are_whole(hf_home: Path) -> int:
    """Every blob in the HF cache holds exactly what its name (sha256 for LFS files, git's
    sha1 for small ones) says; returns how many there are. Partial downloads may only sit in
    ``*.incomplete`` files."""
    count = 0
    for blob in hf_home.rglob("blobs/*"):
        if blob.name.endswith(".incomplete"):
            continue
        data = blob.read_bytes()
        git_sha1 = hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()
        assert blob.name in (hashlib.sha256(data).hexdigest(), git_sha1), blob
        count += 1
    return count


def test_killed_half_way_through_a_catalog_download(killed, monkeypatch, tmp_path):
    if "hub-entry" not in killed:
        pytest.skip("olah is not installed")
    victim, server = killed["hub-entry"], killed["_server"]
    assert victim.returncode == -9
    assert victim.after_kill["final"] == []
    assert any(victim.hf_home.rglob("*.incomplete"))  # the half download is there...
    cache_blobs_are_whole(victim.hf_home)  # ...but under no final name
    monkeypatch.setenv("HF_ENDPOINT", server.url)
    monkeypatch.setenv("HF_HOME", str(victim.hf_home))
    registry = victim.home.parent / "hub.yaml"
    path = resume(victim, registry, monkeypatch, lambda: api.pull("tiny-hub", progress=False))
    assert check(path) == () and store.leftovers() == []
    assert api.info("tiny-hub")["source"]["kind"] == "hub"
    assert cache_blobs_are_whole(victim.hf_home) >= 3
    faultkit.record("crash", "SIGKILL `zoo pull NAME` (published weights) half way through the "
                    "download", 1, "killed (-9); the next pull downloaded, verified and stored "
                    "it", "after kill: no final-named folder, every cached blob whole; after "
                    "next run: 1 valid artifact from the Hub, no leftovers")
