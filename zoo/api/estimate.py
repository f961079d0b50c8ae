"""How long ``zoo pull`` will train before it starts, and the ``--yes`` it needs past an hour.

A recipe build gives no sign of its length until it is under way: a literature-sized PixelCNN
runs for days on a CPU. So before training, ``zoo pull`` prints an estimate for this machine:
the entry's recorded build time (``zoo.catalog.build_time.BuildTime``) when it was measured on this
kind of device, and otherwise a short timing of the first optimizer steps, on random inputs of
the dataset's shape (a step's cost does not depend on the values), at a small batch scaled
up to the recipe's. An estimate above ``CONFIRM_ABOVE_S`` is refused without ``--yes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zoo.catalog.build_time import CONFIRM_ABOVE_S, duration
from zoo.errors import ZooError

if TYPE_CHECKING:
    from zoo.catalog import Entry

TIMING_BATCH = 8  # examples per timed step: enough to be linear in the batch, cheap on a CPU
TIMED_STEPS = 2  # after one warm-up step
FULL_BATCH_BELOW_S = 2.0  # a step estimated cheaper than this is timed at its full batch
SHOW_ABOVE_S = 30.0  # ``zoo pull`` prints estimates from this long up: a build of seconds just runs


class BuildTooLong(ZooError):
    """A recipe build estimated past the hour, asked for without ``--yes``."""


@dataclass(frozen=True)
class Estimate:
    """A build's expected seconds here, and where the number comes from."""

    seconds: float
    how: str

    def line(self, name: str) -> str:
        return f"{name}: building it here takes about {duration(self.seconds)[1:]} ({self.how})"


def for_pull(name: str, *, force: bool = False) -> Estimate | None:
    """The estimate for ``zoo pull name``, or ``None`` when the pull trains nothing (not a
    catalog name, already stored, or published weights to download)."""
    from zoo import api
    from zoo.artifact import store
    from zoo.artifact.health import usable
    from zoo.names import is_path

    if name.startswith("hf-hub:") or is_path(name):
        return None
    store.check_home()  # a store that cannot be used is the one error, before any estimate
    entry = api.get_entry(name)
    if entry.sources or (not force and usable(store.artifact_dir(entry.name), entry.name)):
        return None
    api.get_dataset(entry.dataset).check()  # bad data files: one line, before any estimate
    return for_entry(entry)


def for_entry(entry: Entry, device: str | None = None) -> Estimate:
    """The recorded time for this kind of device when there is one, else a timing of steps."""
    import torch

    from zoo.training.devices import resolve_device

    dev = resolve_device(device or "auto")
    recorded = entry.build_time
    if dev.type == "cpu" and recorded is not None and recorded.cpu_s is not None:
        threads = torch.get_num_threads()
        return Estimate(recorded.cpu_s, "recorded on 2 CPU cores, one torch thread"
                        + ("" if threads == 1 else f"; this run uses {threads}"))
    if dev.type == "cuda" and recorded is not None and recorded.gpu_s is not None:
        return Estimate(recorded.gpu_s, f"recorded on {recorded.gpu}")
    per_step = seconds_per_step(entry, dev)
    return Estimate(per_step * entry.recipe.steps,
                    f"{entry.recipe.steps} steps at {per_step:.3g} s each, timed on this "
                    f"{'GPU' if dev.type == 'cuda' else 'CPU'}; evaluation not counted")


def seconds_per_step(entry: Entry, device, *, bf16: bool = False) -> float:
    """Seconds per optimizer step at the recipe's batch size, from a few timed steps.

    On a CPU the steps are first timed at a small batch and scaled up (a big model's step
    costs in proportion to its batch); when that says a full step is cheap, the fixed
    per-step overhead would dominate the scaling, so the full batch is timed instead. On a
    GPU the full batch is timed: a small one measures only kernel launches.
    """
    import torch

    from zoo import api
    from zoo.training.devices import autocast

    family = api.get_family(entry.family)
    dataset = api.get_dataset(entry.dataset)
    model = family.build(entry.config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6)
    generator = torch.Generator().manual_seed(0)

    def timed(batch: int) -> float:
        if dataset.kind == "discrete":
            x = torch.randint(0, dataset.levels or 2, (batch, *dataset.shape), generator=generator)
        else:
            x = torch.randn(batch, *dataset.shape, generator=generator)
        x = x.to(device)

        def step() -> None:
            with autocast(device, bf16):
                loss = -model.log_likelihood(x).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

        step()  # warm-up: allocations, kernels chosen
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(TIMED_STEPS):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / TIMED_STEPS

    full = entry.recipe.batch_size
    if device.type == "cuda" or full <= TIMING_BATCH:
        return timed(full)
    scaled = timed(TIMING_BATCH) * full / TIMING_BATCH
    return timed(full) if scaled < FULL_BATCH_BELOW_S else scaled


def check(name: str, estimate: Estimate, *, yes: bool) -> None:
    """Refuse a build past ``CONFIRM_ABOVE_S`` unless ``yes``: one line saying how long it
    would take and the ways around it."""
    if estimate.seconds <= CONFIRM_ABOVE_S or yes:
        return
    raise BuildTooLong(
        f"{name}: building it here would take about {duration(estimate.seconds)[1:]} "
        f"({estimate.how}); rerun with --yes to build anyway, or build it on a GPU "
        f"(benchmarks/gpu_mnist.py, or `zoo train {name} --device cuda`), or pull published "
        "weights (`zoo pull hf-hub:ORG/REPO`)")
