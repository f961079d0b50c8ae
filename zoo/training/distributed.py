"""Data-parallel training over processes: torch.distributed, launched by torchrun.

A run is started by ``torchrun --nproc-per-node N -m zoo train NAME ...`` or by
``zoo train NAME --nproc N``, which calls the same launcher (``torch.distributed.run``) on a
free local port. torchrun tells each worker its place through the environment (``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); ``Context`` reads it, and
``setup`` joins the process group: gloo on the CPU, NCCL on GPUs.

Sharding: every rank draws the same global permutation (same seed), the global batch is
the recipe's ``batch_size`` and rank ``r`` takes the ``r``-th of ``world_size`` equal slices
of it, as a ``DistributedSampler`` over a shuffled epoch would. DDP averages the gradients,
so N processes take the very step one process takes on the whole batch.

Importing this module does not import torch.distributed's launcher; ``launch`` does.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn

from zoo.errors import ConfigError, Stopped, TrainingError, ZooError

# Set by ``launch`` in the workers it starts, so that they leave printing the result to it.
LAUNCHED_BY_ZOO = "ZOO_LAUNCHED"


@dataclass(frozen=True)
class Context:
    """This process's place in a run: ``rank`` of ``world_size``, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 alone writes checkpoints, logs, the progress bar and the artifact."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"environment variable {name} must be an integer, got {value!r}") from None


def context() -> Context:
    """This process's ``Context``: from the process group if joined, else from torchrun's env."""
    if dist.is_available() and dist.is_initialized():
        return Context(dist.get_rank(), dist.get_world_size(), _env_int("LOCAL_RANK", 0))
    world = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK={rank} and WORLD_SIZE={world} do not describe a process group")
    return Context(rank, world, _env_int("LOCAL_RANK", 0))


def is_main_process() -> bool:
    """Whether this process should write results (rank 0, or not distributed at all)."""
    return context().is_main


def backend_for(device: torch.device) -> str:
    """NCCL for GPUs, gloo for everything else."""
    return "nccl" if device.type == "cuda" else "gloo"


@contextlib.contextmanager
def process_group(device: torch.device) -> Iterator[Context]:
    """Join torchrun's process group for the block (if the environment names one).

    A group that someone else initialised is used and left alone; one joined here is
    destroyed on the way out, so the process can exit (or train again) cleanly.
    """
    ctx = context()
    joined = False
    if ctx.is_distributed and not dist.is_initialized():
        if not dist.is_available():
            raise TrainingError(
                "this torch build has no torch.distributed; cannot train on several processes")
        if "MASTER_ADDR" not in os.environ or "MASTER_PORT" not in os.environ:
            raise ConfigError(
                "WORLD_SIZE > 1 but MASTER_ADDR/MASTER_PORT are not set: start several processes "
                "with `torchrun --nproc-per-node N -m zoo train NAME` or `zoo train NAME --nproc N`"
            )
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), rank=ctx.rank, world_size=ctx.world_size,
                                device_id=device if device.type == "cuda" else None)
        joined = True
        ctx = context()
    try:
        yield ctx
    finally:
        if joined and dist.is_initialized():
            dist.destroy_process_group()


def check_batch(batch_size: int, world_size: int) -> int:
    """Each rank's share of a global batch; the global batch must split evenly."""
    if batch_size % world_size:
        raise ConfigError(
            f"batch_size {batch_size} cannot be split evenly over {world_size} processes: "
            f"the global batch is the recipe's batch_size whatever the number of processes, so "
            f"use a process count that divides it (or a batch_size divisible by {world_size})"
        )
    return batch_size // world_size


def shard(index: Tensor, ctx: Context) -> Tensor:
    """This rank's contiguous slice of a global batch (``len(index)`` divisible by world size)."""
    if not ctx.is_distributed:
        return index
    share = len(index) // ctx.world_size
    return index[ctx.rank * share : (ctx.rank + 1) * share]


def all_reduce_sum(values: Tensor) -> Tensor:
    """Element-wise sum of ``values`` over all ranks (a no-op without a process group)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        values = values.clone()
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def barrier() -> None:
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


class NegLogLikelihood(nn.Module):
    """The training objective as a module: mean ``-model.log_likelihood(batch)`` in float32
    (``log_prob``, except for dequantized models, whose bound is maximised instead).

    DDP's hooks run on ``forward``; a ZooModel's loss comes from ``log_prob``. Wrapping this
    module (not the model) in DDP makes the hooks see the call that produces the loss.
    """

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, batch: Tensor, context: Tensor | None = None) -> Tensor:
        if context is None:
            return -self.model.log_likelihood(batch).float().mean()
        return -self.model.log_likelihood(batch, context=context).float().mean()


def wrap(objective: nn.Module, device: torch.device, ctx: Context) -> nn.Module:
    """``objective`` inside ``DistributedDataParallel`` when there are several processes."""
    if not ctx.is_distributed:
        return objective
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(objective, device_ids=ids, output_device=ids[0] if ids else None)


# --- launching ------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on localhost that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_args(nproc: int, command: Sequence[str], *, port: int | None = None) -> list[str]:
    """The ``torchrun`` arguments that start ``nproc`` local workers running ``command``.

    ``command`` is what follows ``python``: ``["-m", "zoo", "train", NAME, ...]`` or a script
    path and its arguments.
    """
    if nproc < 1:
        raise ConfigError(f"nproc must be at least 1, got {nproc}")
    args = ["--nnodes", "1", "--nproc-per-node", str(nproc), "--max-restarts", "0",
            "--master-addr", "127.0.0.1", "--master-port", str(port or free_port())]
    command = list(command)
    if command[:1] == ["-m"]:
        return [*args, "-m", *command[1:]]
    return [*args, *command]


def launch_local(nproc: int, zoo_args: Sequence[str]) -> None:
    """Run ``zoo ZOO_ARGS`` in ``nproc`` local worker processes (``--nproc``), refused inside
    a process group torchrun already started (its ``--nproc-per-node`` decides)."""
    if context().is_distributed:
        raise ZooError("this process already belongs to a process group started by torchrun; "
                       "drop nproc (torchrun's --nproc-per-node decides the process count)")
    launch(nproc, ["-m", "zoo", *zoo_args])


def launch(nproc: int, command: Sequence[str], *, quiet_agent: bool = True) -> None:
    """Run ``command`` in ``nproc`` local worker processes through torchrun's launcher.

    This is ``torchrun --nproc-per-node NPROC python COMMAND`` called in-process, so the
    workers see exactly the environment torchrun gives them. A failed worker raises
    ``TrainingError``; each worker has already printed its own error.
    """
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    args = parse_args(torchrun_args(nproc, command))
    env = {LAUNCHED_BY_ZOO: "1"}
    if "OMP_NUM_THREADS" not in os.environ:
        # Share the cores between workers (torchrun would set 1 and warn).
        env["OMP_NUM_THREADS"] = str(max(1, (len(_usable_cpus()) or 1) // nproc))
    # torch's elastic modules set their own loggers' levels: quieting the parents is not enough.
    loggers = [logging.getLogger(n) for n in ("torch.distributed.elastic", "torch.distributed.run",
                                                *logging.root.manager.loggerDict)
               if n.startswith(("torch.distributed.elastic", "torch.distributed.run"))]
    levels = [lg.level for lg in loggers]
    saved = {k: os.environ.get(k) for k in env}
    try:
        os.environ.update(env)
        if quiet_agent:
            # The agent's own chatter (rendezvous, SIGTERM notices) is noise next to the
            # workers' messages; a worker's failure is reported below in one line.
            for lg in loggers:
                lg.setLevel(logging.CRITICAL)
        run(args)
    except SignalException as exc:
        # The agent stopped the workers (each removed its own unfinished writes): a stop
        # signal to this process, reported as one, not as a failure.
        raise Stopped(int(exc.sigval)) from None
    except ChildFailedError as exc:
        rank, failure = exc.get_first_failure()
        raise TrainingError(
            f"distributed training failed: worker rank {rank} of {nproc} exited with code "
            f"{failure.exitcode} (its message is above)"
        ) from None
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        sys.stdout.flush()


def _usable_cpus() -> set[int]:
    if hasattr(os, "sched_getaffinity"):
        return os.sched_getaffinity(0)
    return set(range(os.cpu_count() or 1))
