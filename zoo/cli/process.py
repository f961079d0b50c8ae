"""How a ``zoo`` command runs as a process: stop signals become an exception that every
``finally`` and staging folder cleans up after, and torch gets a fixed number of threads.

Both are settings of the process, not of a command, so they live apart from the commands
(``zoo.cli.commands``), which apply them around every invocation.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import click

from zoo.errors import Stopped

# What stops a command cleanly: Ctrl-C, and what docker, systemd, `timeout` and a closed
# terminal send. Each becomes an exception, so that every `finally` and staging folder
# cleans up; the exit status is the shell's 128 + signal number.
STOP_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")


def _stop(signum: int, frame: Any) -> None:
    # Cleanup must not be cut short by a second signal (a user pressing Ctrl-C again, a
    # supervisor repeating SIGTERM): from now on they are ignored; SIGKILL still works.
    for name in STOP_SIGNALS:
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    raise Stopped(signum)


@contextlib.contextmanager
def stop_signals() -> Iterator[None]:
    """Turn SIGINT, SIGTERM and SIGHUP into :class:`Stopped` while a command runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signums = [getattr(signal, n) for n in STOP_SIGNALS if hasattr(signal, n)]
    saved = {s: signal.getsignal(s) for s in signums}
    for s in signums:
        if saved[s] is not signal.SIG_IGN:  # nohup's ignored SIGHUP stays ignored
            signal.signal(s, _stop)
    try:
        yield
    finally:
        for s, handler in saved.items():
            signal.signal(s, handler)


# torch threads per process, unless --threads, ZOO_THREADS or OMP_NUM_THREADS say otherwise.
# One: on a quiet two-core machine two threads build realnvp-moons no faster than one, and
# on a busy machine threads that wait for each other at every operation made builds 4 to 8
# times slower (docs/performance.md); one thread also keeps results independent of load.
DEFAULT_THREADS = 1
THREADS_ENV = "ZOO_THREADS"
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", THREADS_ENV)


def _use_threads(ctx: click.Context, param: click.Parameter, value: int | None) -> None:
    """Set the torch thread count before the command runs (before torch is imported, when
    it is not yet: then OpenMP reads it from the environment at start)."""
    if value is None:
        if "OMP_NUM_THREADS" in os.environ:  # the user's own setting stands
            return
        value = DEFAULT_THREADS
    count = value or _cores()
    os.environ.update(OMP_NUM_THREADS=str(count), MKL_NUM_THREADS=str(count))
    os.environ[THREADS_ENV] = str(value)  # worker processes (--nproc) inherit it
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(count)


def _cores() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def threads_option(command: Any) -> Any:
    """``--threads N`` (and ``ZOO_THREADS``) on a command that computes."""
    return click.option(
        "--threads", type=click.IntRange(min=0), envvar=THREADS_ENV, metavar="N",
        expose_value=False, is_eager=True, callback=_use_threads,
        help=f"torch threads per process (default {DEFAULT_THREADS}, or $OMP_NUM_THREADS; "
             "0: one per core). Env: ZOO_THREADS.")(command)


@contextlib.contextmanager
def thread_settings() -> Iterator[None]:
    """Put the thread settings back after a command (commands also run in-process)."""
    saved = {k: os.environ.get(k) for k in THREAD_VARS}
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        torch = sys.modules.get("torch")
        if torch is not None and before is not None and torch.get_num_threads() != before:
            torch.set_num_threads(before)
