"""Several output files of one command, written all or none.

``zoo score -o s.csv --plot s.png`` writes two files. Written one after the other, a stop
signal between them left the new ``s.png`` beside no ``s.csv``, while the command said
"unfinished writes were removed". So each file is first written under a temporary name
beside its place, and only when every one is complete are they renamed into place, with
the stop signals held back until the last rename (a signal that arrives meanwhile stops the
command right after). A stop before that removes every temporary file, and the places keep
what they held.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT, SIGTERM and SIGHUP back for the block: one that arrives is delivered
    (to the handler that was in place) when it ends. Only the main thread can change
    handlers; elsewhere the block runs as it is."""
    from zoo.cli.process import STOP_SIGNALS

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    saved: dict[int, Any] = {}
    for name in STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        saved[signum] = signal.getsignal(signum)
        if saved[signum] not in (signal.SIG_IGN, None):
            signal.signal(signum, lambda n, frame: arrived.append(n))
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        if arrived:
            signal.raise_signal(arrived[0])


@contextlib.contextmanager
def together(*paths: Path | None) -> Iterator[list[Path | None]]:
    """Temporary paths (same folder and suffix) for each of ``paths`` (None stays None),
    renamed onto them together when the block succeeds; removed in any case."""
    temps = [None if p is None else p.with_name(f".{p.stem}.{uuid.uuid4().hex[:8]}{p.suffix}")
             for p in paths]
    try:
        for path in paths:
            if path is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
        yield temps
        with signals_held():
            for tmp, path in zip(temps, paths):
                if tmp is not None and path is not None:
                    os.replace(tmp, path)
    finally:
        for tmp in temps:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
