"""The generic maximum-likelihood trainer: any family whose models have ``log_prob``.

It minimises the mean negative log-likelihood in nats with Adam(W), an optional warm-up and
cosine schedule and gradient clipping; holds out ``recipe.val_fraction`` of the training
split, evaluates it every ``recipe.eval_every`` steps and keeps the best weights. The same
recipe and seed give the same weights.

The same loop runs in one process or in several (``zoo.distributed``: DDP over torchrun's
process group, each rank training on its slice of the recipe's global batch), on the CPU or
a GPU (``zoo.devices``), optionally under bf16 autocast and ``torch.compile``. Every
``checkpoint_every`` steps rank 0 writes a checkpoint (``zoo.checkpoint``) holding the whole
training state, so that ``resume=True`` continues a killed run to the very weights an
uninterrupted run reaches (bit for bit on one CPU process).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from zoo import checkpoint as ckpt
from zoo import distributed
from zoo.data import Dataset
from zoo.data.source import Examples, TensorSource
from zoo.devices import autocast, maybe_compile, resolve_compile, resolve_device
from zoo.errors import ConfigError, TrainingError
from zoo.evaluation import mean_nll, nll_per_example
from zoo.flat_parameters import FlatParameters
from zoo.model import ZooModel
from zoo.recipe import Recipe

HISTORY_POINTS = 100  # training-NLL records per run in ``FitResult.history``


@dataclass
class FitResult:
    """What training produced: the model holds the best weights when ``fit`` returns.

    ``seconds`` is the time spent in optimisation steps (not in validation or checkpoints)
    by this call; ``start_step`` is the step a resumed run continued from (0 otherwise).
    ``history`` holds ``{"step", "train_nll"}`` records (the running mean of the batches'
    NLL) about ``HISTORY_POINTS`` times a run; those of evaluation steps also ``val_nll``.
    """

    steps: int
    best_step: int
    val_nll: float | None
    train_nll: float
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    start_step: int = 0
    world_size: int = 1

    @property
    def steps_per_second(self) -> float:
        done = self.steps - self.start_step
        return done / self.seconds if self.seconds > 0 else float("nan")


@dataclass
class Splits:
    """The training examples (re-drawn per epoch when the data says so) and the hold-out."""

    train: Examples
    val: Examples | None


def split_train(data: Examples, recipe: Recipe) -> Splits:
    """Hold out ``recipe.val_fraction`` of ``data`` with a permutation fixed by ``recipe.seed``.

    Data in memory is gathered into the two parts; data in a file stays there, and the parts
    are lists of row numbers.
    """
    n_val = int(round(len(data) * recipe.val_fraction))
    if n_val == 0:
        return Splits(data, None)
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(recipe.seed))
    # A re-drawn dataset (binarized MNIST) is drawn once for validation, with its own seed.
    val = data.subset(order[:n_val]).drawn(torch.Generator().manual_seed(recipe.seed + 1))
    return Splits(data.subset(order[n_val:]), val)


def training_examples(dataset: Dataset | Examples, train_data: Tensor | Examples | None) -> Examples:
    """What ``fit`` trains on: user data as ``Examples``, or a dataset's training split."""
    if isinstance(train_data, Examples):
        return train_data
    if isinstance(dataset, Examples):
        return dataset
    if train_data is not None:
        return Examples(TensorSource(train_data, f"{dataset.name} (given)"), dataset.kind,
                        redraw=dataset.per_epoch)
    return dataset.examples("train")


def make_optimizer(model: ZooModel, recipe: Recipe, params: list[Tensor] | None = None
                   ) -> torch.optim.Optimizer:
    """The recipe's optimizer over ``params`` (default: the model's parameters)."""
    cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    params = list(model.parameters()) if params is None else params
    # The fused kernel updates every tensor in one call: on small models the per-tensor
    # loop of the default implementation costs more than the model itself.
    fused = all(p.is_floating_point() and p.device.type in ("cpu", "cuda") for p in params)
    return cls(params, lr=recipe.lr, weight_decay=recipe.weight_decay, fused=fused or None)


def make_schedule(optimizer: torch.optim.Optimizer, recipe: Recipe, steps: int):
    """Linear warm-up, then constant or cosine decay to zero over ``steps``."""

    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        if recipe.schedule == "constant":
            return 1.0
        progress = (step - recipe.warmup_steps) / max(1, steps - recipe.warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


class Batches:
    """An endless stream of shuffled global mini-batches, one fresh permutation (and draw) per epoch.

    Every rank holds the same stream (same generator seed) and reads only its own slice of
    each global batch (``distributed.shard``), which is what a ``DistributedSampler`` over
    one shuffled epoch gives, with the global batch fixed whatever the number of processes.
    Rows are read from the data's storage and converted batch by batch.
    ``state``/``restore`` save and replay the stream exactly: the generator's state at the
    start of the current epoch, the epoch and the position in it.
    """

    def __init__(self, data: Examples, batch_size: int, generator: torch.Generator,
                 *, ctx: distributed.Context | None = None, device: torch.device | None = None):
        self.ctx = ctx or distributed.Context()
        world = self.ctx.world_size
        x = data
        if len(x) < batch_size:
            # A split smaller than one batch: use all of it (rounded down to split evenly).
            batch_size = max(world, len(x) - len(x) % world)
            if len(x) < world:
                raise ConfigError(f"{len(x)} training examples cannot be split over {world} processes")
        distributed.check_batch(batch_size, world)
        self.data, self.batch_size, self.generator = data, batch_size, generator
        self.device = device
        self.epoch_data: Examples | None = None
        self.order: Tensor | None = None
        self.position = 0
        self.epoch = 0
        self.epoch_start_state: Tensor | None = None

    def _new_epoch(self) -> None:
        self.epoch_start_state = self.generator.get_state()
        data = self.data.drawn(self.generator)
        self.order = torch.randperm(len(self.data), generator=self.generator)
        self.position = 0
        self.epoch += 1
        # Data in memory goes to the training device once per epoch and batches are gathered
        # there; data in a file is read batch by batch.
        self.epoch_data = data.to(self.device)

    def next(self) -> Tensor:
        if self.order is None or self.position + self.batch_size > len(self.order):
            self._new_epoch()
        index = self.order[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        index = distributed.shard(index, self.ctx)
        return self.epoch_data.take(index)

    def state(self) -> dict[str, Any]:
        """JSON data from which ``restore`` rebuilds this stream at this very position."""
        return {
            "epoch": self.epoch,
            "position": self.position,
            "batch_size": self.batch_size,
            "epoch_start": (None if self.epoch_start_state is None
                            else ckpt.encode_bytes(self.epoch_start_state)),
            "generator": ckpt.encode_bytes(self.generator.get_state()),
        }

    def restore(self, state: dict[str, Any]) -> None:
        """Replay the current epoch's draw from its starting generator state, then seek."""
        if state["batch_size"] != self.batch_size:
            raise ckpt.CheckpointError(
                f"checkpoint batch size {state['batch_size']} differs from this run's {self.batch_size}")
        expected = ckpt.decode_bytes(state["generator"])
        if state["epoch_start"] is None:
            self.generator.set_state(expected)
            return
        self.generator.set_state(ckpt.decode_bytes(state["epoch_start"]))
        self._new_epoch()
        self.epoch, self.position = state["epoch"], state["position"]
        if not torch.equal(self.generator.get_state(), expected):
            raise ckpt.CheckpointError(
                "the checkpoint's data stream cannot be replayed: re-drawing the epoch gave a "
                "different generator state (is the dataset's per-epoch draw deterministic?)")


def mean_nll_across_ranks(model: ZooModel, x: Tensor | Examples, batch_size: int,
                          ctx: distributed.Context | None = None) -> float:
    """Mean NLL of ``x``; with several ranks each scores (and reads) a slice and the sums are added.

    Every rank gets the same number, so decisions taken on it (best weights, stopping) agree.
    """
    ctx = ctx or distributed.context()
    if not ctx.is_distributed:
        return mean_nll(model, x, batch_size)
    if isinstance(x, Examples):
        part = x.subset(torch.arange(len(x)).tensor_split(ctx.world_size)[ctx.rank])
    else:
        part = x.tensor_split(ctx.world_size)[ctx.rank]
    nll = nll_per_example(model, part, batch_size) if len(part) else torch.zeros(0, dtype=torch.float64)
    totals = torch.tensor([nll.sum().item(), float(len(nll))], dtype=torch.float64)
    if distributed.backend_for(model.device) == "nccl":
        totals = totals.to(model.device)
    totals = distributed.all_reduce_sum(totals).cpu()
    return (totals[0] / totals[1]).item()


def _fingerprint(model: ZooModel, recipe: Recipe, steps: int, data: Examples,
                 n_train: int) -> dict[str, Any]:
    """What must match for a checkpoint to belong to this run, the data's contents included."""
    from zoo.config import to_dict

    config = model.config
    return {
        "family": model.family or type(model).__name__,
        "config": to_dict(config) if dataclasses.is_dataclass(config) else None,
        "recipe": to_dict(recipe),
        "steps": steps,
        "train_examples": n_train,
        "data": data.fingerprint(),
    }


def _rng_state(device: torch.device) -> dict[str, Any]:
    state: dict[str, Any] = {"torch": ckpt.encode_bytes(torch.get_rng_state())}
    if device.type == "cuda":
        state["cuda"] = ckpt.encode_bytes(torch.cuda.get_rng_state(device))
    return state


def _set_rng_state(state: dict[str, Any], device: torch.device) -> None:
    torch.set_rng_state(ckpt.decode_bytes(state["torch"]))
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(ckpt.decode_bytes(state["cuda"]), device)


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def fit(
    model: ZooModel,
    dataset: Dataset | Examples,
    recipe: Recipe,
    *,
    steps: int | None = None,
    progress: bool | None = None,
    device: str | torch.device | None = None,
    train_data: Tensor | Examples | None = None,
    callback: Callable[[int, dict[str, float]], None] | None = None,
    bf16: bool = False,
    compile: bool | str | Callable[..., Any] = "auto",
    checkpoint_dir: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = False,
) -> FitResult:
    """Train ``model`` on ``dataset``'s training split following ``recipe``.

    ``dataset`` is a registered ``Dataset`` or the user's data as ``zoo.data.source.Examples``
    (read from its file batch by batch, in its stored dtype). ``steps`` overrides the
    recipe's step count; ``progress`` shows a tqdm bar (default: when stderr is a terminal;
    rank 0 only); ``train_data`` replaces the loaded training split (tests, custom data);
    ``callback(step, record)`` is called on every rank at each
    evaluation step. On return the model holds the weights with the best validation NLL.

    Devices: ``device`` is ``None`` (stay where the model is), ``"auto"``, ``"cpu"``,
    ``"cuda"`` (this process's GPU) or a ``torch.device``; ``bf16`` runs the forward pass
    under bfloat16 autocast; ``compile`` (``True`` or a backend) uses ``torch.compile`` and
    falls back to eager execution with a warning if compiling fails; ``"auto"`` (the default)
    compiles only runs long enough to repay it (``zoo.devices.compile_pays``), ``False``
    never does.

    Processes: started by torchrun (its environment names the process group), every rank
    calls ``fit`` with the same arguments; the model is wrapped in DDP and each rank takes
    ``batch_size / world_size`` examples of every global batch.

    Checkpoints: every ``checkpoint_every`` steps rank 0 writes the training state to
    ``checkpoint_dir``; ``resume=True`` continues from the newest checkpoint there (and from
    step 0 when there is none). A checkpoint from a different run (recipe, config, steps) or
    a damaged one is refused with ``zoo.checkpoint.CheckpointError``; so is a checkpoint of
    other data (the run records a digest of the training data's contents).
    """
    steps = recipe.steps if steps is None else steps
    if steps < 1:
        raise ValueError(f"steps must be positive, got {steps}")
    if checkpoint_every is not None and checkpoint_every < 1:
        raise ValueError(f"checkpoint_every must be positive, got {checkpoint_every}")
    if (checkpoint_every or resume) and checkpoint_dir is None:
        raise ValueError("checkpoint_every and resume need a checkpoint_dir")
    ctx0 = distributed.context()
    distributed.check_batch(recipe.batch_size, ctx0.world_size)
    dev = model.device if device is None else resolve_device(device, local_rank=ctx0.local_rank)
    if ctx0.is_distributed and dev.type == "cuda" and device is None:
        dev = resolve_device("cuda", local_rank=ctx0.local_rank)
    with distributed.process_group(dev) as ctx:
        return _fit(model, dataset, recipe, steps=steps, progress=progress, device=dev,
                    train_data=train_data, callback=callback, bf16=bf16, compile=compile,
                    checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
                    checkpoint_every=checkpoint_every, resume=resume, ctx=ctx)


def _fit(model: ZooModel, dataset: Dataset | Examples, recipe: Recipe, *, steps: int,
         progress: bool | None, device: torch.device, train_data: Tensor | Examples | None,
         callback: Callable[[int, dict[str, float]], None] | None, bf16: bool,
         compile: bool | str | Callable[..., Any], checkpoint_dir: Path | None,
         checkpoint_every: int | None, resume: bool, ctx: distributed.Context) -> FitResult:
    model.to(device)
    torch.manual_seed(recipe.seed)
    data = training_examples(dataset, train_data)
    splits = split_train(data, recipe)
    batches = Batches(splits.train, recipe.batch_size,
                      torch.Generator().manual_seed(recipe.seed + 2), ctx=ctx,
                      device=device if device.type != "cpu" else None)
    # One flat tensor for the optimizer (zoo.flat_parameters): on small models the per-tensor
    # cost of a step is most of it. Checkpoints still hold per-parameter optimizer state.
    flat = FlatParameters.of([p for p in model.parameters() if p.requires_grad])
    optimizer = make_optimizer(model, recipe, None if flat is None else [flat.flat])
    schedule = make_schedule(optimizer, recipe, steps)
    val = splits.val.to(device) if splits.val is not None else None
    # The data's digest reads all of it: only a run that checkpoints needs it.
    fingerprint = (_fingerprint(model, recipe, steps, data, len(splits.train))
                   if checkpoint_dir is not None else {})

    history: list[dict[str, float]] = []
    # The training NLL is recorded HISTORY_POINTS times a run (cheap: no extra pass), the
    # validation NLL at every evaluation: the training curve shows the run, not 6 points.
    record_every = max(1, steps // HISTORY_POINTS)
    best_nll, best_step = math.inf, 0
    best_state: dict[str, Tensor] | None = None
    running = 0.0
    start = 0
    if resume and checkpoint_dir is not None:
        sidecar = ckpt.latest(checkpoint_dir)
        if sidecar is None:
            if ctx.is_main:
                print(f"zoo: no checkpoint in {checkpoint_dir}; training from step 0", file=sys.stderr)
        else:
            tensors, meta = ckpt.load(sidecar)
            _check_fingerprint(meta.get("run"), fingerprint, sidecar)
            try:
                model.load_state_dict({k[len("model."):]: v for k, v in tensors.items()
                                       if k.startswith("model.")})
                saved = ckpt.join_optimizer_state(tensors, meta["optimizer"])
                optimizer.load_state_dict(saved if flat is None else flat.flat_state(saved))
                schedule.load_state_dict(meta["scheduler"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise ckpt.CheckpointError(
                    f"checkpoint {sidecar} does not fit this model: {' '.join(str(exc).split())[:400]}"
                ) from None
            batches.restore(meta["batches"])
            _set_rng_state(meta["rng"], device)
            start = meta["step"]
            running = meta["running"]
            history = meta["history"]
            best_step = meta["best_step"]
            best_nll = math.inf if meta["best_nll"] is None else meta["best_nll"]
            best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
            best_state = best or None
            if checkpoint_every is None:
                checkpoint_every = meta.get("checkpoint_every")
            if ctx.is_main:
                print(f"zoo: resuming from {sidecar} (step {start} of {steps})", file=sys.stderr)
        distributed.barrier()

    compile = resolve_compile(compile, device, steps)
    objective = distributed.wrap(maybe_compile(distributed.NegLogLikelihood(model), compile),
                                 device, ctx)

    def save_checkpoint(step: int) -> None:
        tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
        opt_state = optimizer.state_dict()
        if flat is not None:
            opt_state = flat.per_parameter_state(opt_state)
        opt_tensors, opt_meta = ckpt.split_optimizer_state(opt_state)
        tensors.update(opt_tensors)
        if best_state is not None:
            tensors.update({f"best.{k}": v for k, v in best_state.items()})
        meta = {
            "run": fingerprint,
            "world_size": ctx.world_size,
            "checkpoint_every": checkpoint_every,
            "optimizer": opt_meta,
            "scheduler": ckpt.json_value(schedule.state_dict(), "scheduler state"),
            "batches": batches.state(),
            "rng": _rng_state(device),
            "running": running,
            "best_step": best_step,
            "best_nll": _finite_or_none(best_nll),
            "history": history,
        }
        ckpt.save(checkpoint_dir, step, tensors, meta)

    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=not show, desc=f"training {model.family}",
               unit="step", dynamic_ncols=True, leave=False)
    seconds = 0.0
    model.train()
    try:
        for step in range(start + 1, steps + 1):
            tic = time.perf_counter()
            batch = batches.next().to(device, non_blocking=True)
            with autocast(device, bf16):
                loss = objective(batch)
            # The global mean loss, the same on every rank, so that all ranks agree on
            # stopping (a rank that raised alone would leave the others waiting forever).
            value = loss.detach().float()
            if ctx.is_distributed:
                value = distributed.all_reduce_sum(value) / ctx.world_size
            value = value.item()
            if not math.isfinite(value):
                raise TrainingError(
                    f"the loss became {value} at step {step}; training stopped. "
                    "Lower the learning rate or set grad_clip in the recipe."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if flat is not None:
                flat.gather_grads()
            if recipe.grad_clip is not None:
                torch.nn.utils.clip_grad_norm_(
                    model.parameters() if flat is None else [flat.flat], recipe.grad_clip)
            optimizer.step()
            schedule.step()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds += time.perf_counter() - tic
            running = value if step == 1 else 0.98 * running + 0.02 * value
            bar.update(1)
            evaluating = step % recipe.eval_every == 0 or step == steps
            if evaluating or step % record_every == 0:
                record: dict[str, float] = {"step": step, "train_nll": running}
                history.append(record)
            if evaluating:
                if val is not None:
                    record["val_nll"] = mean_nll_across_ranks(model, val, recipe.eval_batch_size,
                                                              ctx)
                    model.train()
                    if record["val_nll"] < best_nll:
                        best_nll, best_step = record["val_nll"], step
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "step"})
                if callback is not None:
                    callback(step, record)
            if checkpoint_every and step % checkpoint_every == 0 and ctx.is_main:
                save_checkpoint(step)
            if (evaluating and val is not None and recipe.patience is not None
                    and step - best_step >= recipe.patience * recipe.eval_every):
                steps = step  # early stopping: every rank saw the same validation NLL
                break
    finally:
        bar.close()
        if flat is not None:
            flat.release()
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_step = steps
    model.eval()
    return FitResult(steps=steps, best_step=best_step,
                     val_nll=None if val is None else best_nll, train_nll=running,
                     history=history, seconds=seconds, start_step=start,
                     world_size=ctx.world_size)


def _check_fingerprint(saved: Any, current: dict[str, Any], sidecar: Path) -> None:
    if saved == current:
        return
    if not isinstance(saved, dict):
        raise ckpt.CheckpointError(f"checkpoint {sidecar} does not record which run wrote it")
    diffs = []
    for key in current:
        if saved.get(key) != current[key]:
            if isinstance(current[key], dict) and isinstance(saved.get(key), dict):
                inner = [f"{key}.{k}: {saved[key].get(k)!r} vs {current[key].get(k)!r}"
                         for k in sorted(set(saved[key]) | set(current[key]))
                         if saved[key].get(k) != current[key].get(k)]
                diffs.extend(inner)
            else:
                diffs.append(f"{key}: {saved.get(key)!r} vs {current[key]!r}")
    raise ckpt.CheckpointError(
        f"checkpoint {sidecar} was written by a different run ({'; '.join(diffs[:4])}, "
        "checkpoint vs now); resume with the same recipe, config and steps, or train without --resume"
    )


def describe(result: FitResult) -> dict[str, Any]:
    return {"steps": result.steps, "best_step": result.best_step, "val_nll": result.val_nll}
