"""How long an entry takes to build from its recipe: recorded in the catalog, shown before
a build starts.

A recipe build can take seconds (two moons) or hours (a literature-sized PixelCNN on a CPU),
and nothing in a recipe's step count says which. So a catalog entry may record the build
time that was measured (``build_time``): on a 2-core CPU with one torch thread, what
``zoo pull`` uses by default, and on a GPU where one was measured. ``zoo list``, ``zoo info``
and the model card show it, and ``zoo pull`` prints an estimate for this machine before it
trains (``zoo.api.estimate``), refusing one over :data:`CONFIRM_ABOVE_S` without ``--yes``.

This module imports no torch: ``zoo list`` formats these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zoo.config import bounds

#: A build estimated to take longer than this needs ``zoo pull --yes``.
CONFIRM_ABOVE_S = 3600.0
MAX_SECONDS = 1e8  # about three years: anything above is a typo


@dataclass(frozen=True)
class BuildTime:
    """A catalog entry's measured build time (``zoo pull``: training, evaluation, pictures).

    - ``cpu_s``: seconds on a 2-core CPU with one torch thread (``zoo pull``'s default).
    - ``gpu_s``: seconds on the GPU named by ``gpu`` (e.g. ``H100``), where one was measured.
    - ``note``: how it was measured (the machine's load, whether it is CPU time).
    """

    cpu_s: float | None = field(default=None, metadata=bounds(0.0, MAX_SECONDS))
    gpu_s: float | None = field(default=None, metadata=bounds(0.0, MAX_SECONDS))
    gpu: str = ""
    note: str = ""

    def validate(self) -> None:
        if self.gpu_s is not None and not self.gpu:
            raise ValueError("build_time: gpu_s needs gpu, the card it was measured on")

    def summary(self) -> str:
        """One short phrase: ``~11 min on 2 CPU cores, ~40 s on an H100``."""
        parts = []
        if self.cpu_s is not None:
            parts.append(f"{duration(self.cpu_s)} on 2 CPU cores")
        if self.gpu_s is not None:
            parts.append(f"{duration(self.gpu_s)} on {article(self.gpu)} {self.gpu}")
        return ", ".join(parts)


def article(word: str) -> str:
    """"an" before a vowel sound of the usual GPU names (H100, A100, RTX), else "a"."""
    return "an" if word[:1].upper() in "AEFHILMNORSX" else "a"


def duration(seconds: float) -> str:
    """A rough human duration: ``~40 s``, ``~11 min``, ``~2.5 h``, ``~3 days``."""
    if seconds < 90:
        return f"~{max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"~{round(seconds / 60)} min"
    if seconds < 48 * 3600:
        hours = seconds / 3600
        return f"~{hours:.1f} h" if hours < 10 else f"~{round(hours)} h"
    return f"~{round(seconds / 86400)} days"
