"""Stop signals: real ``zoo`` processes sent SIGTERM (docker, systemd, ``timeout``), SIGINT
(Ctrl-C) or SIGHUP (a closed terminal) clean up and say so in one line.

- During ``zoo pull``'s recipe training: exit 128 + signal, one line, no staging folder
  left, nothing under the final name.
- Between the two renames of ``zoo pull --force`` (``ZOO_FAULT_PAUSE=publish-swap``): the
  old artifact is back under its name before the process exits, byte for byte.

All victims run at once, each with its own ``ZOO_HOME``.
"""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path

import faultkit
import pytest
from faultkit import fault_line, start_zoo, store_artifacts, zoo_env

from zoo import api
from zoo.artifact import store
from zoo.artifact.verify import check
from zoo.cli import process
from zoo.cli.commands import cli
from zoo.errors import Stopped, stop_behind
from zoo.plugin import registry as plugin_registry

# `zoo` with every stop signal handled as a fresh Python process handles it by default.
# A test runner may hand its children a stop signal ignored: SIGINT when started in the
# background of a non-interactive shell, SIGHUP under nohup (CI ran so once, and the SIGHUP
# victim trained on until it was killed). zoo rightly keeps an ignored signal ignored
# (the last test below), so each victim first restores the defaults.
DEFAULT_SIGNALS_DRIVER = """
import signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
signal.signal(signal.SIGHUP, signal.SIG_DFL)
from zoo.cli.commands import cli
cli(args=sys.argv[1:], prog_name="zoo")
"""

SIGNALS = {"SIGTERM": signal.SIGTERM, "SIGINT": signal.SIGINT, "SIGHUP": signal.SIGHUP}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    yield from faultkit.one_thread()


@pytest.fixture(scope="module")
def seed(tmp_path_factory) -> Path:
    """A valid artifact of the tiny entry, built once."""
    root = tmp_path_factory.mktemp("seed")
    catalog = faultkit.tiny_registry(root / "r.yaml", steps=100)
    mp = pytest.MonkeyPatch()
    try:
        mp.setenv("ZOO_HOME", str(root / "home"))
        mp.setenv("ZOO_REGISTRY", str(catalog))
        plugin_registry.reset()
        return api.pull("tiny", progress=False)
    finally:
        mp.undo()
        plugin_registry.reset()


def start(args: list[str], home: Path, registry: Path, **kwargs) -> faultkit.Proc:
    return start_zoo(args, zoo_env(home, registry), argv=["-c", DEFAULT_SIGNALS_DRIVER, *args],
                     **kwargs)


def said(proc: faultkit.Proc) -> list[str]:
    """What the process printed on stderr, but the fault-point announcements."""
    return [line for line in proc.stderr.splitlines()
            if line.strip() and not line.startswith("zoo-fault-point")]


def signal_during_training(procs: dict[str, faultkit.Proc], timeout: float = 60,
                           workers: int = 1) -> dict[str, int]:
    """Once every process (each of its ``workers``) has started training (and trained a
    while), send each the signal it is named after; their exit codes, every process killed
    in the end whatever happens. (A worker still starting up sits in a collective call that
    no signal handler interrupts: torchrun's agent would wait 30 s, then kill it.)"""
    try:
        for proc in procs.values():
            proc.wait_for(fault_line("train-start"), count=workers)
        time.sleep(1.5)  # well into the endless training (on every worker)
        for sig, proc in procs.items():
            proc.popen.send_signal(SIGNALS[sig])
        return {sig: proc.finish(timeout=timeout) for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()


def test_a_stop_signal_during_pull_removes_the_staging_folder(tmp_path):
    endless = faultkit.tiny_registry(tmp_path / "endless.yaml", steps=1_000_000)
    procs = {}
    for sig in SIGNALS:
        procs[sig] = start(["pull", "tiny", "-q", "--yes"], tmp_path / sig, endless,  # hours: --yes
                           pause="train-start", seconds=0)
    codes = signal_during_training(procs)
    for sig, proc in procs.items():
        assert codes[sig] == 128 + SIGNALS[sig], (sig, codes[sig], proc.stderr)
        assert said(proc) == [f"Error: stopped by {sig}; unfinished writes were removed"], sig
        home = tmp_path / sig
        assert store_artifacts(home) == [] and list((home / "models").iterdir()) == [], sig
    faultkit.record("signals", "SIGTERM, SIGINT or SIGHUP to `zoo pull` during recipe "
                    "training", len(procs), "exit 143 / 130 / 129 with one line (\"stopped "
                    "by SIGTERM\"), no traceback",
                    "no final-named folder, no staging folder")


@pytest.mark.slow
def test_a_stop_signal_to_a_multi_process_run_is_one_line_and_leaves_nothing(tmp_path):
    """``zoo train --nproc 2``: torchrun's agent turns the signal into a SignalException and
    stops the workers. Old code: exit 1, a torch warning, each worker's own "stopped" line
    and "unexpected SignalException"."""
    endless = faultkit.tiny_registry(tmp_path / "endless.yaml", steps=1_000_000)
    procs = {}
    for sig in SIGNALS:
        procs[sig] = start(["train", "tiny", "--nproc", "2", "--device", "cpu", "-q", "-o",
                            str(tmp_path / sig / "out")], tmp_path / sig / "home", endless,
                           pause="train-start", seconds=0)
    codes = signal_during_training(procs, timeout=90, workers=2)
    for sig, proc in procs.items():
        assert codes[sig] == 128 + SIGNALS[sig], (sig, codes[sig], proc.stderr)
        assert said(proc) == [f"Error: stopped by {sig}; unfinished writes were removed"], sig
        # No output folder and no staging folder beside it (the store may not exist at all).
        assert {p.name for p in (tmp_path / sig).iterdir()} <= {"home"}, sig
        assert store_artifacts(tmp_path / sig / "home") == [], sig
    faultkit.record("signals", "SIGTERM, SIGINT or SIGHUP to `zoo train --nproc 2` during "
                    "training", len(procs), "exit 143 / 130 / 129 with one line, as with one "
                    "process (it was exit 1 with four lines)", "no output folder, no staging folder")


def test_a_stop_signal_between_the_renames_of_a_forced_pull_rolls_back(tmp_path, seed):
    """Old code: the new build was deleted and the old artifact left only in the trash."""
    registry = faultkit.tiny_registry(tmp_path / "r.yaml", steps=100)
    old = (seed / "model.safetensors").read_bytes()
    procs = {}
    for sig in ("SIGINT", "SIGTERM"):
        shutil.copytree(seed, tmp_path / sig / "models" / "tiny")
        procs[sig] = start(["pull", "tiny", "--force", "-q"], tmp_path / sig, registry,
                           pause="publish-swap", seconds=300)
    try:
        for sig, proc in procs.items():
            proc.wait_for(fault_line("publish-swap"))
            proc.popen.send_signal(SIGNALS[sig])
        codes = {sig: proc.finish(timeout=60) for sig, proc in procs.items()}
    finally:
        for proc in procs.values():
            proc.kill()
    for sig, proc in procs.items():
        assert codes[sig] == 128 + SIGNALS[sig], (sig, proc.stderr)
        assert said(proc) == [f"Error: stopped by {sig}; unfinished writes were removed"]
        models = tmp_path / sig / "models"
        # Before anything else runs: the old artifact is back under its name, whole.
        assert sorted(p.name for p in models.iterdir()) == ["tiny"], sig
        assert (models / "tiny" / "model.safetensors").read_bytes() == old
        assert check(models / "tiny") == ()
        assert store.leftovers(models) == []
    faultkit.record("signals", "SIGINT or SIGTERM to `zoo pull --force` between its two "
                    "renames (`ZOO_FAULT_PAUSE=publish-swap`)", len(procs),
                    "rolled back before exiting (130 / 143, one line)",
                    "the previous artifact under its name, byte for byte; no trash, "
                    "no staging folder")


@pytest.fixture
def caller_handlers():
    """The stop signals' handlers as a fresh process has them, the runner's back after."""
    saved = {s: signal.getsignal(s) for s in SIGNALS.values()}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    yield
    for s, handler in saved.items():
        signal.signal(s, handler)


def test_a_signal_the_caller_ignores_stays_ignored_and_the_rest_become_stopped(caller_handlers):
    """``nohup zoo pull ...`` must survive its terminal closing: an ignored SIGHUP stays
    ignored while a command runs; the other stop signals raise ``Stopped``; on leaving,
    every handler is the caller's again."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    with process.stop_signals():
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
        with pytest.raises(Stopped) as stopped:
            signal.raise_signal(signal.SIGTERM)
        assert stopped.value.signum == signal.SIGTERM
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_stop_that_surfaces_as_another_exception_is_still_reported_as_a_stop(
        caller_handlers, cli_runner, monkeypatch):
    """Raised while a pybind11 extension module initialises, ``Stopped`` comes out as
    ``ImportError: initialization failed`` raised from it (CI saw it from a ``--nproc`` worker
    that SIGTERM caught in a lazy import). The command was stopped all the same: one line,
    exit 128 + 15."""
    def stopped_inside_an_import(name):
        try:
            signal.raise_signal(signal.SIGTERM)
        except Stopped as stop:
            raise ImportError("initialization failed") from stop

    monkeypatch.setattr(api, "info", stopped_inside_an_import)
    result = cli_runner.invoke(cli, ["info", "tiny"])
    assert result.exit_code == 128 + signal.SIGTERM, result.output
    assert result.output.strip() == "Error: stopped by SIGTERM; unfinished writes were removed"
    # An ImportError of its own is reported as itself.
    monkeypatch.setattr(api, "info", lambda name: (_ for _ in ()).throw(ImportError("no numpy")))
    result = cli_runner.invoke(cli, ["info", "tiny"])
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: unexpected ImportError: no numpy"), result.output


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_stop_behind_finds_a_stop_as_a_cause_or_a_context_however_deep():
    stop = Stopped(signal.SIGHUP)
    import_error = ImportError("initialization failed")
    import_error.__cause__ = stop
    compile_failed = RuntimeError("backend compiler failed")  # torch wraps it once more
    compile_failed.__cause__ = import_error
    assert stop_behind(compile_failed) is stop
    cleanup = OSError("cleanup failed")  # raised while the stop unwound
    cleanup.__context__ = KeyboardInterrupt()
    assert isinstance(stop_behind(cleanup), KeyboardInterrupt)
    assert stop_behind(stop) is stop
    plain = ValueError("bad")
    plain.__context__ = TypeError("worse")
    assert stop_behind(plain) is None
    looped = ValueError("a")  # a cycle in the chain ends the search
    looped.__context__ = _raised(TypeError("b"))
    looped.__context__.__context__ = looped
    assert stop_behind(looped) is None
