"""The generic maximum-likelihood trainer: any family whose models have ``log_prob``.

It minimises the mean negative log-likelihood in nats with Adam(W), an optional warm-up and
cosine schedule and gradient clipping; holds out ``recipe.val_fraction`` of the training
split, evaluates it every ``recipe.eval_every`` steps and keeps the best weights. The same
recipe and seed give the same weights.

The same loop runs in one process or in several (``zoo.training.distributed``: DDP over torchrun's
process group, each rank training on its slice of the recipe's global batch), on the CPU or
a GPU (``zoo.training.devices``), optionally under bf16 autocast and ``torch.compile``. Every
``checkpoint_every`` steps rank 0 writes a checkpoint (``zoo.training.checkpoint``) holding the whole
training state, so that ``resume=True`` continues a killed run to the very weights an
uninterrupted run reaches (bit for bit on one CPU process).
"""

from __future__ import annotations

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

from zoo.catalog.recipe import Recipe
from zoo.data import Dataset
from zoo.data.source import PERMUTED_SPLIT_ROWS, Examples, TensorSource, distinct_rows
from zoo.errors import ConfigError, TrainingError
from zoo.infer.evaluation import mean_nll, nll_per_example
from zoo.plugin.family import Family
from zoo.plugin.model import ZooModel
from zoo.training import checkpoint as ckpt
from zoo.training import distributed
from zoo.training.batches import Batches
from zoo.training.denormals import flushing_subnormals
from zoo.training.devices import autocast, maybe_compile, resolve_compile, resolve_device
from zoo.training.flat_parameters import FlatParameters
from zoo.training.state import TrainState, run_fingerprint
from zoo.training.step_memory import check_step_memory

HISTORY_POINTS = 100  # training-NLL records per run in ``FitResult.history``


@dataclass
class FitResult:
    """What training produced: the model holds the best weights when ``maximise_likelihood`` returns.

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


#: Examples held out for validation, at most: every evaluation scores all of them.
MAX_VAL_ROWS = 50_000


def index_dtype(n: int) -> torch.dtype:
    """int32 row numbers where they fit: half the memory, and ``torch.randperm`` draws the
    very same permutation in either dtype."""
    return torch.int32 if n < 2**31 else torch.int64


def split_train(data: Examples, recipe: Recipe) -> Splits:
    """Hold out ``recipe.val_fraction`` of ``data`` (at most ``MAX_VAL_ROWS`` examples) with
    a permutation fixed by ``recipe.seed``.

    Data in memory is gathered into the two parts; data in a file stays there, and the parts
    are lists of row numbers. A file of more than ``PERMUTED_SPLIT_ROWS`` rows holds out
    rows drawn with the seed (``distinct_rows``) and trains on the others, in the file's
    order (``Examples.without``): memory and time in the held-out rows, not the file's.
    """
    n = len(data)
    n_val = min(int(round(n * recipe.val_fraction)), MAX_VAL_ROWS)
    if n_val == 0:
        return Splits(data, None)
    generator = torch.Generator().manual_seed(recipe.seed)
    if n > PERMUTED_SPLIT_ROWS and not isinstance(data.source, TensorSource):
        held = distinct_rows(n, n_val, generator)
        return Splits(data.without(held), data.subset(held))
    order = torch.randperm(n, generator=generator, dtype=index_dtype(n))
    # A re-drawn dataset (binarized MNIST) is drawn once for validation, with its own seed.
    val = data.subset(order[:n_val]).drawn(torch.Generator().manual_seed(recipe.seed + 1))
    return Splits(data.subset(order[n_val:]), val)


def training_examples(dataset: Dataset | Examples, train_data: Tensor | Examples | None) -> Examples:
    """What ``maximise_likelihood`` trains on: user data as ``Examples``, or a dataset's training split."""
    if isinstance(train_data, Examples):
        return train_data
    if isinstance(dataset, Examples):
        return dataset
    if train_data is not None:
        return Examples(TensorSource(train_data, f"{dataset.name} (given)"), dataset.kind,
                        redraw=dataset.per_epoch)
    return dataset.examples("train")


def fit_context(model: ZooModel, data: Examples) -> None:
    """Check that the data carries the context the model is conditioned on, and set the
    model's context statistics from it (class frequencies, or the context's mean and
    spread: ``ContextInput.fit``). An unconditional model trains on the examples alone."""
    spec = model.context_spec
    if not spec:
        return
    if data.context is None or data.context_kind != spec.kind:
        kind = "labels" if spec.kind == "label" else "a context vector"
        raise ConfigError(f"this model is conditional on {spec.describe()}, and the training "
                          f"data carries no {kind}")
    module = getattr(model, "context_input", None)
    if module is not None:
        module.fit(data.context_batches(1 << 16))


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


def train_model(family: Family, model: ZooModel, dataset: Dataset | Examples, recipe: Recipe,
                **options: Any) -> Any:
    """Train ``model`` the way its family says: the family's own ``train`` when it overrides
    ``Family.train``, else the generic trainer :func:`maximise_likelihood` with the same arguments."""
    result = family.train(model, dataset, recipe, **options)
    return (maximise_likelihood(model, dataset, recipe, **options) if result is NotImplemented
            else result)


def maximise_likelihood(
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
    compiles only runs long enough to repay it (``zoo.training.devices.compile_pays``), ``False``
    never does.

    Processes: started by torchrun (its environment names the process group), every rank
    calls ``maximise_likelihood`` with the same arguments; the model is wrapped in DDP and each rank takes
    ``batch_size / world_size`` examples of every global batch.

    Checkpoints: every ``checkpoint_every`` steps rank 0 writes the training state to
    ``checkpoint_dir``; ``resume=True`` continues from the newest checkpoint there (and from
    step 0 when there is none). A checkpoint from a different run (recipe, config, steps) or
    a damaged one is refused with ``zoo.training.checkpoint.CheckpointError``; so is a checkpoint of
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
    # Refused now, in one line, rather than "can't allocate" (or the kernel's kill) later.
    check_step_memory(model, max(1, recipe.batch_size // ctx0.world_size), dev)
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
    # One flat tensor for the optimizer (zoo.training.flat_parameters): on small models the
    # per-tensor cost of a step is most of it. Checkpoints still hold per-parameter state.
    fit_context(model, splits.train)
    # A data-dependent start (resume overwrites it).
    model.initialize_from_data(splits.train.without_context())
    flat = FlatParameters.of([p for p in model.parameters() if p.requires_grad])
    optimizer = make_optimizer(model, recipe, None if flat is None else [flat.flat])
    state = TrainState(model, optimizer, make_schedule(optimizer, recipe, steps), batches, flat,
                       device, checkpoint_every=checkpoint_every)
    val = splits.val.to(device) if splits.val is not None else None
    # The data's digest reads all of it: only a run that checkpoints needs it.
    run = (run_fingerprint(model, recipe, steps, data, len(splits.train))
           if checkpoint_dir is not None else {})
    if resume and checkpoint_dir is not None:
        _resume(state, checkpoint_dir, run, steps, ctx)
    start = state.step

    compile = resolve_compile(compile, device, steps)
    objective = distributed.wrap(maybe_compile(distributed.NegLogLikelihood(model), compile),
                                 device, ctx)
    # The training NLL is recorded HISTORY_POINTS times a run (cheap: no extra pass), the
    # validation NLL at every evaluation: the training curve shows the run, not 6 points.
    record_every = max(1, steps // HISTORY_POINTS)
    show = ctx.is_main and (sys.stderr.isatty() if progress is None else progress)
    from tqdm.auto import tqdm

    bar = tqdm(total=steps, initial=start, disable=not show, desc=f"training {model.family}",
               unit="step", dynamic_ncols=True, leave=False)
    seconds = 0.0
    model.train()
    try:
        # Subnormal floats take the CPU's slow path (zoo.training.denormals).
        with flushing_subnormals(device):
            for step in range(start + 1, steps + 1):
                tic = time.perf_counter()
                value = _step(state, objective, recipe, bf16, ctx, step)
                seconds += time.perf_counter() - tic
                state.step = step
                state.running = value if step == 1 else 0.98 * state.running + 0.02 * value
                bar.update(1)
                evaluating = step % recipe.eval_every == 0 or step == steps
                if evaluating or step % record_every == 0:
                    record: dict[str, float] = {"step": step, "train_nll": state.running}
                    state.history.append(record)
                if evaluating:
                    if val is not None:
                        record["val_nll"] = mean_nll_across_ranks(model, val, recipe.eval_batch_size,
                                                                  ctx)
                        model.train()
                        state.keep_if_best(record["val_nll"])
                    bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "step"})
                    if callback is not None:
                        callback(step, record)
                if state.checkpoint_every and step % state.checkpoint_every == 0 and ctx.is_main:
                    state.save(checkpoint_dir, run, ctx.world_size)
                if (evaluating and val is not None and recipe.patience is not None
                        and step - state.best_step >= recipe.patience * recipe.eval_every):
                    steps = step  # early stopping: every rank saw the same validation NLL
                    break
    finally:
        bar.close()
        if flat is not None:
            flat.release()
    if state.best_weights is not None:
        model.load_state_dict(state.best_weights)
    else:
        state.best_step = steps
    model.eval()
    return FitResult(steps=steps, best_step=state.best_step,
                     val_nll=None if val is None else state.best_nll, train_nll=state.running,
                     history=state.history, seconds=seconds, start_step=start,
                     world_size=ctx.world_size)


def _resume(state: TrainState, directory: Path, run: dict[str, Any], steps: int,
            ctx: distributed.Context) -> None:
    """Restore ``state`` from the newest checkpoint in ``directory`` (from step 0 if none)."""
    sidecar = ckpt.latest(directory)
    if sidecar is None:
        if ctx.is_main:
            print(f"zoo: no checkpoint in {directory}; training from step 0", file=sys.stderr)
    else:
        state.restore(sidecar, run)
        if ctx.is_main:
            print(f"zoo: resuming from {sidecar} (step {state.step} of {steps})",
                  file=sys.stderr)
    distributed.barrier()


def _step(state: TrainState, objective: Callable[[Tensor], Tensor], recipe: Recipe,
          bf16: bool, ctx: distributed.Context, step: int) -> float:
    """One optimisation step; returns the global mean loss (the same on every rank)."""
    device = state.device
    batch, contexts = state.batches.next_with_context()
    batch = batch.to(device, non_blocking=True)
    with autocast(device, bf16):
        # Data may carry labels a model does not use (an unconditional model of digits).
        loss = (objective(batch) if contexts is None or not state.model.context_spec
                else objective(batch, contexts.to(device, non_blocking=True)))
    # The global mean loss, the same on every rank, so that all ranks agree on stopping (a
    # rank that raised alone would leave the others waiting forever).
    value = loss.detach().float()
    if ctx.is_distributed:
        value = distributed.all_reduce_sum(value) / ctx.world_size
    value = value.item()
    if not math.isfinite(value):
        raise TrainingError(
            f"the loss became {value} at step {step}; training stopped. "
            "Lower the learning rate or set grad_clip in the recipe."
        )
    state.adam.zero_grad()
    loss.backward()
    if state.flat is not None:
        state.flat.gather_grads()
    if recipe.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(
            state.model.parameters() if state.flat is None else [state.flat.flat],
            recipe.grad_clip)
    state.adam.step()
    state.schedule.step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return value


def describe(result: FitResult) -> dict[str, Any]:
    return {"steps": result.steps, "best_step": result.best_step, "val_nll": result.val_nll}
