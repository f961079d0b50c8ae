"""A fault-injection hook for the crash and concurrency tests; it does nothing unless asked.

With ``ZOO_FAULT_PAUSE=<point>`` set, a process that reaches the named point prints one line,
``zoo-fault-point <point> pid=<pid>``, on stderr and sleeps ``ZOO_FAULT_SECONDS`` seconds
(default 60), so that a test can SIGKILL it exactly there. ``ZOO_FAULT_SECONDS=0`` only
announces the point (the concurrency tests count how many processes trained a recipe).
With ``ZOO_FAULT_RELEASE=<file>`` the pause ends as soon as that file exists, so a test can
hold a process at a point while others catch up, then let it go on.

The points, each on a cold path (once per command, never per step or per tensor):

- ``train-start``: a recipe is about to be trained (``zoo.api.build_artifact``).
- ``weights-written``: the weights file is in the staging folder, ``config.json`` is not yet.
- ``publish``: the staging folder is complete and about to be renamed to its final name.
- ``publish-swap``: an existing artifact was moved aside and the new one is not yet in place.

(A kill in the middle of a Hub download needs no point here: the crash tests pause
huggingface_hub's own download function from a driver script.)
"""

from __future__ import annotations

import os
import sys
import time

ENV_POINT = "ZOO_FAULT_PAUSE"
ENV_SECONDS = "ZOO_FAULT_SECONDS"
ENV_RELEASE = "ZOO_FAULT_RELEASE"
POINTS = ("train-start", "weights-written", "publish", "publish-swap")


def point(name: str) -> None:
    """Announce and pause at ``name`` when ``ZOO_FAULT_PAUSE`` names it; otherwise return at once."""
    if os.environ.get(ENV_POINT) != name:
        return
    try:
        seconds = float(os.environ.get(ENV_SECONDS, "60"))
    except ValueError:
        seconds = 60.0
    sys.stderr.write(f"zoo-fault-point {name} pid={os.getpid()}\n")
    sys.stderr.flush()
    release = os.environ.get(ENV_RELEASE)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if release and os.path.exists(release):
            return
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
