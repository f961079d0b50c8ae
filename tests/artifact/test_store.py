"""zoo.artifact.store: staging folders, atomic publish, leftovers of killed writers, locks, names."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path

import faultkit
import pytest

import zoo
from zoo import api
from zoo.artifact import store
from zoo.artifact.store import FILES, STAGING_PREFIX, TRASH_PREFIX
from zoo.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def fake_artifact(folder: Path, tag: str) -> Path:
    """A folder with the three artifact files (contents only need to tell them apart)."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        (folder / name).write_text(f"{tag} {name}")
    return folder


def test_staging_folder_is_removed_when_the_block_fails(isolated_home):
    final = store.artifact_dir("a")
    with pytest.raises(RuntimeError), store.staging(final) as tmp:
        fake_artifact(tmp, "new")
        raise RuntimeError("killed by an error half way")
    assert not final.exists()
    assert os.listdir(final.parent) == []


def test_publish_replaces_and_leaves_no_trash(isolated_home):
    final = store.artifact_dir("a")
    for tag in ("old", "new"):
        with store.staging(final) as tmp:
            fake_artifact(tmp, tag)
            store.publish(tmp, final)
    assert (final / "config.json").read_text() == "new config.json"
    assert sorted(os.listdir(final.parent)) == ["a"]
    assert store.leftovers() == []


def test_an_interrupted_swap_is_rolled_back(isolated_home):
    """Killed between publish's two renames: the old artifact waits in the trash, nothing
    has the final name. Cleaning puts it back; the unfinished staging folder goes."""
    final = store.artifact_dir("a")
    fake_artifact(final.parent / f"{TRASH_PREFIX}a-0123456789ab", "old")
    fake_artifact(final.parent / f"{STAGING_PREFIX}a-ba9876543210", "new")
    assert len(store.leftovers()) == 2
    store.clean_leftovers(final)
    assert (final / "config.json").read_text() == "old config.json"
    assert store.leftovers() == []


def test_a_half_removed_trash_folder_is_not_restored(isolated_home):
    final = store.artifact_dir("a")
    trash = fake_artifact(final.parent / f"{TRASH_PREFIX}a-0123456789ab", "old")
    (trash / "model.safetensors").unlink()  # publish's rmtree was killed half way
    store.clean_leftovers(final)
    assert not final.exists() and store.leftovers() == []


def test_the_newest_complete_trash_folder_wins(isolated_home):
    final = store.artifact_dir("a")
    older = fake_artifact(final.parent / f"{TRASH_PREFIX}a-aaaaaaaaaaaa", "older")
    fake_artifact(final.parent / f"{TRASH_PREFIX}a-bbbbbbbbbbbb", "newer")
    past = time.time() - 60
    os.utime(older, (past, past))
    store.clean_leftovers(final)
    assert (final / "config.json").read_text() == "newer config.json"


def test_leftovers_of_a_longer_name_are_not_touched(isolated_home):
    """Cleaning 'a' must not remove the staging folder of 'a-b', another name whose writer
    (holding its own lock) may be alive."""
    final = store.artifact_dir("a")
    other = fake_artifact(final.parent / f"{STAGING_PREFIX}a-b-0123456789ab", "other")
    odd = fake_artifact(final.parent / f"{STAGING_PREFIX}a-0123456789abX", "odd")
    store.clean_leftovers(final)
    assert other.is_dir() and odd.is_dir()


@pytest.mark.parametrize("name", ["../x", "..", "a/b", "/etc", "A", "a\x00b", "", "a" * 65, "-a"])
def test_names_that_could_leave_the_store_are_refused(isolated_home, name):
    with pytest.raises(ConfigError):
        store.artifact_dir(name)
    with pytest.raises(ConfigError), store.locked(name):
        pass


def test_a_busy_lock_says_why_it_waits(isolated_home, caplog):
    held, release = threading.Event(), threading.Event()

    def holder():
        with store.locked("a"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="zoo.artifact.store"), store.locked("a"):
        waited = time.monotonic() - started
    thread.join()
    assert waited >= 0.2
    assert "waiting for another zoo process to finish writing a" in caplog.text


def test_pull_after_an_interrupted_swap_returns_the_old_artifact_without_building(
        tiny_catalog, monkeypatch):
    path = api.pull("realnvp-tiny", progress=False)
    before = (path / "model.safetensors").read_bytes()
    # What `zoo pull --force` killed between its two renames leaves behind:
    os.replace(path, path.parent / f"{TRASH_PREFIX}realnvp-tiny-0123456789ab")
    fake_artifact(path.parent / f"{STAGING_PREFIX}realnvp-tiny-ba9876543210", "half")

    def no_build(*args, **kwargs):
        raise AssertionError("the recipe ran again although the artifact was recoverable")

    monkeypatch.setattr(api, "fetch_or_build", no_build)
    assert api.pull("realnvp-tiny") == path
    assert (path / "model.safetensors").read_bytes() == before
    assert store.leftovers() == []
    zoo.load("realnvp-tiny")


def test_pull_removes_what_a_killed_build_left(tiny_catalog):
    final = store.artifact_dir("realnvp-tiny")
    half = final.parent / f"{STAGING_PREFIX}realnvp-tiny-0123456789ab"
    half.mkdir(parents=True)
    (half / "model.safetensors").write_bytes(b"\0" * 10)
    assert api.pull("realnvp-tiny", progress=False) == final
    assert store.leftovers() == [] and api.verify()[0].ok


def test_a_failed_build_publishes_nothing(tiny_catalog, monkeypatch):
    def broken(entry, directory, **kwargs):
        (directory / "model.safetensors").write_bytes(b"half")
        raise RuntimeError("trainer crashed")

    monkeypatch.setattr(api, "fetch_or_build", broken)
    with pytest.raises(RuntimeError):
        api.pull("realnvp-tiny")
    models = store.models_dir()
    assert os.listdir(models) == []


def test_train_into_the_store_waits_for_the_lock(tiny_catalog):
    """`zoo train NAME` writes into the store under the name's lock, like a pull."""
    held, release = threading.Event(), threading.Event()

    def holder():
        with store.locked("realnvp-tiny"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=holder)
    thread.start()
    held.wait(10)
    done = []
    trainer = threading.Thread(target=lambda: done.append(api.train("realnvp-tiny",
                                                                     progress=False)))
    trainer.start()
    time.sleep(0.5)
    assert not done and not store.artifact_dir("realnvp-tiny").exists()
    release.set()
    thread.join()
    trainer.join(60)
    assert done == [store.artifact_dir("realnvp-tiny")]
