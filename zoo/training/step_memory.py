"""How much memory one training step needs, estimated before the first step.

A PixelCNN on 100 grey 512x512 images with the default batch needs hundreds of GB for its
activations: unchecked, the run ends in "can't allocate" or is killed by the kernel, with
nothing said about what to lower. So before training, zoo runs the model's ``log_prob`` once
on the ``meta`` device (shapes only, no memory, no arithmetic) and adds up what autograd
saves for the backward pass; a step needs about that, plus the parameters four times over
(weights, gradients, two Adam moments). Above the memory this process can get, training is
refused in one line saying what to lower.

It is an estimate: temporaries freed inside the forward are not counted, nor the data
loader's copies. It errs low, so a refused run would certainly not have fitted; a run that
passes can still fail on a machine whose memory others use meanwhile.
"""

from __future__ import annotations

import copy
import math
import os
import resource
from pathlib import Path
from typing import Any

import torch

from zoo.errors import ZooError

#: Below this many bytes (batch x values x 4 kB) no model zoo has comes near a gigabyte:
#: the estimate (a copy of the model on ``meta``, one forward) is skipped.
SKIP_BELOW = 256 << 20
GB = 1 << 30


class StepMemoryError(ZooError):
    """A training step would need more memory than this process can get."""


def step_bytes(model: Any, batch: int) -> tuple[int, int]:
    """(bytes autograd saves for a batch of ``batch`` examples, bytes of the parameters),
    from one ``log_prob`` on the ``meta`` device."""
    # A copy whose tensors are on meta from the start: the real ones are never duplicated.
    memo = {id(t): (torch.nn.Parameter(torch.empty_like(t, device="meta"), t.requires_grad)
                    if isinstance(t, torch.nn.Parameter) else torch.empty_like(t, device="meta"))
            for t in [*model.parameters(), *model.buffers()]}
    meta = copy.deepcopy(model, memo).train()
    shape = tuple(model.config.shape)
    saved, seen = 0, set()
    kept = []  # the saved tensors (meta: no memory), alive so that their ids stay unique

    def pack(t: torch.Tensor) -> torch.Tensor:
        nonlocal saved
        base = t if t._base is None else t._base
        if id(base) not in seen:  # a tensor saved by two operations is held once
            seen.add(id(base))
            kept.append(base)
            saved += base.numel() * base.element_size()
        return t

    # The value checks read values back (min, max, any), which the meta device cannot do;
    # they are skipped while compiling, and the trainer checks its data itself.
    compiling = torch.compiler.is_compiling
    torch.compiler.is_compiling = lambda: True
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            for dtype in (torch.long, torch.float32):  # levels, or values (flows dequantize)
                try:
                    meta.log_prob(torch.empty((batch, *shape), dtype=dtype, device="meta"))
                    break
                except (ValueError, TypeError, RuntimeError):
                    saved = 0
                    seen.clear()
            else:
                return 0, 0  # the family cannot run on meta: no estimate, no refusal
    finally:
        torch.compiler.is_compiling = compiling
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return saved, params


def available_bytes(device: torch.device) -> int | None:
    """The memory this process can still get on ``device`` (None: unknown): free GPU
    memory; else the least of the system's available memory, the cgroup's limit and the
    address-space limit (``ulimit -v``)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    limits = []
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                limits.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        top = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text())
        if top != "max":
            limits.append(int(top) - used)
    except (OSError, ValueError):
        pass
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        limits.append(soft - _virtual_size())
    return max(0, min(limits)) if limits else None


def _virtual_size() -> int:
    try:
        for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def check_step_memory(model: Any, batch: int, device: torch.device) -> None:
    """Refuse, before the first step, a batch of ``batch`` examples whose step would need
    more memory than ``device`` has left, naming what to lower."""
    values = math.prod(model.config.shape)
    if batch * values * 4096 < SKIP_BELOW:
        return
    free = available_bytes(device)
    if free is None:
        return
    saved, params = step_bytes(model, batch)
    need = saved + 4 * params
    if need <= free:
        return
    one = saved / batch
    fits = max(0, int((free - 4 * params) // one)) if one else 0
    shape = "x".join(str(s) for s in model.config.shape)
    raise StepMemoryError(
        f"a training step needs about {need / GB:.1f} GB (batch {batch} of {shape} values: "
        f"{one / GB:.2f} GB an example), but only {free / GB:.1f} GB is available; lower "
        f"--batch-size (at most about {fits} fit), the model's width (-c hidden=...), or "
        "crop or resize the data")
