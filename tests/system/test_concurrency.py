"""Concurrency: several real processes pulling or building the same artifact at once all
succeed, the store ends with exactly one valid artifact, the recipe is trained once, and a
lock left by a dead process blocks nobody.

Processes are held at fault points (``ZOO_FAULT_PAUSE`` + ``ZOO_FAULT_RELEASE``, see
zoo/faults.py) so that the overlap is certain, not a matter of timing.
"""

from __future__ import annotations

import hashlib
import sys
import time

import faultkit
import pytest
from faultkit import Proc, fault_line, start_zoo, store_artifacts, zoo_env
from filelock import Timeout
from hubserver import hub_server, tiny_artifacts  # noqa: F401  (fixtures, used if olah is there)

from zoo import api
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.plugin import registry as plugin_registry

WAITING = "waiting for another zoo process to finish writing"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


def finish_all(procs: list[Proc], timeout: float = 180) -> list[int]:
    try:
        return [p.finish(timeout) for p in procs]
    finally:
        for p in procs:
            p.kill()


def test_three_pulls_of_one_recipe_train_it_once(tmp_path):
    home, release = tmp_path / "home", tmp_path / "go"
    registry = faultkit.tiny_registry(tmp_path / "registry.yaml")
    env = zoo_env(home, registry)
    procs = [start_zoo(["pull", "tiny", "-q"], env, pause="train-start", release=release)
             for _ in range(3)]
    try:
        # One process holds the lock and is parked before training; the other two must be
        # waiting on the lock before it may go on.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            trainers = [p for p in procs if fault_line("train-start") in p.stderr]
            waiters = [p for p in procs if WAITING in p.stderr]
            if len(trainers) == 1 and len(waiters) == 2:
                break
            assert all(p.popen.poll() is None for p in procs), [p.stderr for p in procs]
            time.sleep(0.05)
        else:
            raise AssertionError([p.stderr for p in procs])
        release.touch()
        codes = finish_all(procs)
    finally:
        for p in procs:
            p.kill()
    assert codes == [0, 0, 0], [p.stderr for p in procs]
    final = home / "models" / "tiny"
    assert {p.stdout.strip() for p in procs} == {str(final)}
    trained = sum(p.stderr.count(fault_line("train-start")) for p in procs)
    assert trained == 1
    assert store_artifacts(home) == ["tiny"] and check(final) == ()
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny"]  # no leftovers
    faultkit.record("concurrency", "3 processes `zoo pull` the same recipe at once (2 held "
                    "on the lock while the first trains)", 3,
                    "all 3 succeeded and printed the same path; the recipe was trained once",
                    "exactly 1 valid artifact, no leftovers")


LOCK_HOLDER = r"""
import sys, time
from zoo.artifact import store
with store.locked(sys.argv[1]):
    print("holding", flush=True)
    sys.stderr.write("zoo-fault-point lock-held\n"); sys.stderr.flush()
    time.sleep(300)
"""


def test_a_lock_held_by_a_killed_process_does_not_block(tiny_catalog, isolated_home):
    env = zoo_env(isolated_home)
    holder = start_zoo([], env, argv=["-c", LOCK_HOLDER, "realnvp-tiny"])
    try:
        holder.wait_for("zoo-fault-point lock-held", timeout=60)
        with pytest.raises(Timeout), store.locked("realnvp-tiny", timeout=0.2):
            pass  # alive, it does hold the lock
    finally:
        assert holder.kill() == -9
    assert (isolated_home / "locks" / "realnvp-tiny.lock").exists()  # the file stays...
    started = time.monotonic()
    path = api.pull("realnvp-tiny", progress=False)  # ...but blocks nobody
    assert check(path) == ()
    assert time.monotonic() - started < 60
    faultkit.record("concurrency", "a process holding an artifact's lock is SIGKILLed, then "
                    "`zoo pull` runs", 1, "the pull took the lock at once and completed",
                    "1 valid artifact (the lock file stays, unlocked)")


def test_cleaning_one_name_never_touches_a_live_writer_of_a_longer_name(tmp_path, monkeypatch):
    """`tiny` and `tiny-x` have different locks; pulling `tiny` must not remove the staging
    folder of a live `tiny-x` writer (their folders share the prefix `.staging-tiny-`)."""
    home, release = tmp_path / "home", tmp_path / "go"
    registry = faultkit.tiny_registry(tmp_path / "registry.yaml", ("tiny", "tiny-x"))
    writer = start_zoo(["pull", "tiny-x", "-q"], zoo_env(home, registry),
                       pause="weights-written", release=release)
    try:
        writer.wait_for(fault_line("weights-written"))
        monkeypatch.setenv("ZOO_HOME", str(home))
        monkeypatch.setenv("ZOO_REGISTRY", str(registry))
        plugin_registry.reset()
        store.models_dir().joinpath(".staging-tiny-0123456789ab").mkdir()  # a real leftover
        api.pull("tiny", progress=False)
        release.touch()
        code = writer.finish()
    finally:
        writer.kill()
    assert code == 0, writer.stderr
    assert store_artifacts(home) == ["tiny", "tiny-x"]
    assert all(r.ok for r in api.verify()) and store.leftovers() == []
    faultkit.record("concurrency", "`zoo pull tiny` while a `zoo pull tiny-x` is mid-write "
                    "(same folder prefix)", 1, "both succeeded; only tiny's own leftover was "
                    "removed", "2 valid artifacts, no leftovers")


def test_two_pulls_of_published_weights_at_once(request, tmp_path):
    try:
        server = request.getfixturevalue("hub_server")
    except pytest.skip.Exception:
        pytest.skip("olah is not installed")
    weights_sha = hashlib.sha256(
        (server.artifacts["B"] / "model.safetensors").read_bytes()).hexdigest()
    registry = faultkit.tiny_registry(tmp_path / "registry.yaml", ("tiny-hub",))
    registry.write_text(registry.read_text() + (
        f"    sources: [{{repo: acme/moons, revision: main, sha256: {weights_sha}}}]\n"))
    home = tmp_path / "home"
    env = zoo_env(home, registry, HF_ENDPOINT=server.url, HF_HOME=str(tmp_path / "hf"))
    procs = [start_zoo(["pull", "tiny-hub", "-q"], env) for _ in range(2)]
    codes = finish_all(procs)
    assert codes == [0, 0], [p.stderr for p in procs]
    assert store_artifacts(home) == ["tiny-hub"]
    assert check(home / "models" / "tiny-hub") == ()
    assert sorted(p.name for p in (home / "models").iterdir()) == ["tiny-hub"]
    faultkit.record("concurrency", "2 processes `zoo pull` an entry with published weights "
                    "at once (local Hub server)", 2, "both succeeded",
                    "exactly 1 valid artifact from the Hub, no leftovers")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
