"""The ``zoo`` command: thin click commands over ``zoo.api``.

Every error a user can cause prints one line on stderr and exits non-zero; ``--debug``
shows the traceback instead. Nothing here imports torch until a command needs a model, so
``zoo list`` and ``zoo --help`` stay fast.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from zoo.cli import conditional, plugin_rows
from zoo.cli.completion_names import complete_name
from zoo.cli.info_text import info_lines
from zoo.cli.process import DEFAULT_THREADS, stop_signals, thread_settings, threads_option
from zoo.cli.setup_commands import completion, plugin_group
from zoo.errors import ZooError, stop_behind

__all__ = ["DEFAULT_THREADS", "cli", "main"]

SEED = click.IntRange(0, 2**63 - 1)  # what torch.Generator.manual_seed takes


class ZooGroup(click.Group):
    """A group that turns exceptions into one-line errors (unless ``--debug``)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with stop_signals(), thread_settings():
                return super().invoke(ctx)
        except (click.exceptions.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except KeyboardInterrupt as exc:
            _stopped(ctx, getattr(exc, "signum", signal.SIGINT))
        except Exception as exc:
            stop = stop_behind(exc)
            if stop is not None:  # the stop surfaced as another exception
                _stopped(ctx, getattr(stop, "signum", signal.SIGINT))
            if ctx.params.get("debug") or os.environ.get("ZOO_DEBUG"):
                raise
            raise click.ClickException(one_line(exc)) from None


def _stopped(ctx: click.Context, signum: int) -> NoReturn:
    """Say that a stop signal ended the command (once: a ``--nproc`` worker's launcher says
    it), and exit as a shell reports a signal, 128 + its number."""
    if not _launched_worker():
        click.echo(f"Error: stopped by {signal.Signals(signum).name}; unfinished writes "
                   "were removed", err=True)
    ctx.exit(128 + signum)


def _launched_worker() -> bool:
    """Whether this process is a worker that ``zoo ... --nproc`` started (such a process has
    imported ``zoo.training.distributed``; looking it up here imports no torch)."""
    distributed = sys.modules.get("zoo.training.distributed")
    return distributed is not None and bool(os.environ.get(distributed.LAUNCHED_BY_ZOO))


def one_line(exc: BaseException) -> str:
    """The message of ``exc`` on one line; unexpected errors say how to see more."""
    if isinstance(exc, OSError) and not isinstance(exc, ZooError) and exc.filename:
        from zoo.artifact.store import os_error_message  # names the path and what to do

        return os_error_message(exc, action=None)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, (ZooError, ValueError, OSError, LookupError)):
        return text
    return f"unexpected {type(exc).__name__}: {text} (run with --debug for the traceback)"


def emit_json(data: Any) -> None:
    """Print ``data`` as strict JSON: a NaN or infinity (the standard error of one example)
    becomes ``null``, since a bare ``NaN`` breaks every JSON reader but Python's."""
    from zoo.artifact.safe_files import strict_json

    click.echo(json.dumps(strict_json(json.loads(json.dumps(data, default=str))), indent=2,
                          allow_nan=False))


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(package_name="genzoo", prog_name="zoo")
def cli(debug: bool) -> None:
    """A zoo of exact-likelihood generative models: pull, sample, score, train, publish."""


@cli.command("list")
@click.argument("pattern", required=False)
@click.option("--family", help="Only models of this family.")
@click.option("--dataset", help="Only models trained on this dataset.")
@click.option("--pulled", is_flag=True, help="Only models in the local store.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_cmd(pattern: str | None, family: str | None, dataset: str | None, pulled: bool,
             as_json: bool) -> None:
    """List the models of the catalog, with their test NLL and bits/dim.

    PATTERN is a shell-style pattern over names (`zoo list "made-*"`). Pulled models show
    what their build measured on the test split; the others show the catalog's expected
    number, marked as such. "≤" marks an upper bound (dequantization).
    """
    from zoo import api
    from zoo.api.rankings import list_rows, list_text

    chosen = set(api.list_models(pattern, family=family, dataset=dataset,
                                 pulled=True if pulled else None))
    rows = [r for r in list_rows() if r["name"] in chosen]
    if as_json:
        emit_json([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
    elif not rows and (pattern or family or dataset or pulled):
        asked = ", ".join(f"{k} {v}" for k, v in (("pattern", pattern), ("family", family),
                                                  ("dataset", dataset)) if v)
        click.echo(f"no catalog entry matches {asked or 'the filters'}"
                   f"{' among pulled models' if pulled else ''}")
    else:
        click.echo(list_text(rows))


@cli.command()
@click.argument("dataset", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--csv", "as_csv", is_flag=True,
              help="Print a results table as CSV (timm's results-*.csv layout).")
def leaderboard(dataset: str | None, as_json: bool, as_csv: bool) -> None:
    """Rank every catalog model on DATASET (or on each dataset) by test NLL.

    NLL in nats per example and bits/dim, measured for pulled models, expected (catalog)
    for the others; "≤" marks an upper bound (a continuous model of discrete data).
    `docs/results/results-DATASET.csv` holds the catalog's tables in the --csv form.
    """
    from zoo import api
    from zoo.api.rankings import csv_text, text_table

    table = api.leaderboard(dataset)
    if as_csv:
        click.echo(csv_text(table), nl=False)
    elif as_json:
        emit_json([r.as_dict() for r in table])
    else:
        click.echo(text_table(table))


@cli.command()
@click.argument("name", shell_complete=complete_name)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def info(name: str, as_json: bool) -> None:
    """Show a model's catalog entry and, if pulled, its artifact."""
    from zoo import api

    data = api.info(name).as_dict()
    if as_json:
        emit_json(data)
        return
    lines = info_lines(name, data)
    width = max(len(k) for k, _ in lines)
    for key, value in lines:
        click.echo(f"{key:<{width}}  {value}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--check", is_flag=True,
              help="Exit non-zero if any plugin failed or any catalog entry was rejected "
                   "(for plugin authors' CI); plain listing always exits 0.")
def plugins(as_json: bool, check: bool) -> None:
    """List installed plugins: what each registered, how long it took to load, load errors
    and rejected catalog entries."""
    from zoo.catalog import catalog
    from zoo.plugin.registry import registry

    reg = registry()
    try:  # validating the entries is what finds the rejected ones
        rejected, catalog_error = catalog().rejected, None
    except ZooError as exc:
        rejected, catalog_error = {}, one_line(exc)
    infos = [p.as_dict() for p in [*reg.plugins.values(), *reg.disabled.values()]]
    for p in infos:
        p["rejected_entries"] = {r.name: r.message for r in rejected.values()
                                 if r.provider == p["name"]}
    if as_json:
        emit_json(infos + plugin_rows.catalog_file_rows(rejected, reg.plugins, catalog_error))
    else:
        plugin_rows.show_plugins(infos)
        others = [r for r in rejected.values() if r.provider not in reg.plugins]
        for r in others:
            click.echo(f"rejected catalog entry {r.name!r} ({r.provider}): {r.message}")
        if catalog_error:
            click.echo(f"catalog error: {catalog_error}")
        for var, names in sorted(reg.unmatched.items()):
            click.echo(f"note: {var} names {', '.join(names)}, which no installed plugin is called")
    failed = [p for p in infos if p["error"]]
    if check and (failed or rejected or catalog_error):
        raise click.ClickException(
            f"{len(failed)} plugin(s) failed, {len(rejected)} catalog entr"
            f"{'y was' if len(rejected) == 1 else 'ies were'} rejected"
            + (", and the catalog does not load" if catalog_error else ""))


@cli.command()
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("--force", is_flag=True, help="Download or build again even if stored.")
@click.option("--offline", is_flag=True, help="Use only what is cached; never the network.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--yes", "-y", is_flag=True,
              help="Build even when the estimate for this machine is over an hour.")
def pull(name: str, force: bool, offline: bool, quiet: bool, yes: bool) -> None:
    """Download (or build from its recipe) a model and store it; print its path.

    Before a build trains, it prints how long it should take here (the catalog's recorded
    time, or a timing of its first steps); past an hour it needs --yes.
    """
    from zoo import api
    from zoo.api import estimate

    guess = estimate.for_pull(name, force=force)
    if guess is not None:
        estimate.check(name, guess, yes=yes)  # past the hour without --yes: one line, exit 1
        if not quiet and guess.seconds >= estimate.SHOW_ABOVE_S:  # seconds need no warning
            click.echo(guess.line(name), err=True)
    path = api.pull(name, force=force, offline=offline, progress=False if quiet else None)
    click.echo(str(path))


@cli.command()
@click.argument("names", nargs=-1, shell_complete=complete_name)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def verify(names: tuple[str, ...], as_json: bool) -> None:
    """Check stored artifacts (all, or NAMES): files, config, sha256 of the weights, strict
    load. Exits non-zero if any is bad; `zoo pull --force NAME` repairs a catalog model."""
    from zoo import api
    from zoo.artifact import store

    results = api.verify(list(names) or None)
    bad = [r for r in results if not r.ok]
    if as_json:
        emit_json([r.as_dict() for r in results])
    else:
        for r in results:
            shown = r.name if len(r.name) <= 80 else r.name[:77] + "..."
            click.echo(f"{'ok ' if r.ok else 'BAD'}  {shown}  {r.path or ''}")
            for problem in r.problems:
                click.echo(f"     {problem}")
            for warning in r.warnings:
                click.echo(f"     warning: {warning}")
        if not results:
            click.echo("The store holds no artifacts.")
        leftovers = store.leftovers() if not names else []
        if leftovers:
            click.echo(f"({len(leftovers)} unfinished write(s) left by killed processes, hidden "
                       "under staging names; the next write of the name removes them)")
    if bad:
        raise click.ClickException(f"{len(bad)} of {len(results)} artifacts failed verification")


@cli.command()
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("--data", "data", metavar="SOURCE",
              help="Train on your own data: .csv, .npy, .safetensors, .parquet, a folder of "
                   "images, a saved dataset or hf-dataset:ORG/NAME[@REV]. NAME is then a "
                   "family (realnvp, made, ...) or a catalog entry to start from.")
@click.option("-c", "--config", "assignments", multiple=True, metavar="KEY=VALUE",
              help="With --data: set a config key (YAML value: -c hidden=[64]); "
                   "recipe.KEY sets a recipe key (-c recipe.val_fraction=0).")
@click.option("--steps", type=click.IntRange(min=1), help="Override the recipe's step count.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Override the recipe's batch size.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True),
              help="Override the recipe's learning rate.")
@click.option("--seed", type=SEED, help="Override the recipe's seed (0 .. 2**63-1).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Artifact directory to write (default: the store entry of NAME; "
                   "required with --data).")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@click.option("--nproc", type=click.IntRange(min=1), default=1, show_default=True,
              help="Processes to train on (DDP through torchrun; the global batch stays the recipe's).")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto",
              show_default=True, help="auto: CUDA when present (each process its own GPU).")
@click.option("--bf16", is_flag=True, help="bfloat16 autocast for the forward pass (GPUs).")
@click.option("--compile/--no-compile", "compile_", default=None,
              help="torch.compile the model. Default: only runs long enough to repay compiling "
                   "(40,000 steps or more). Falls back to eager with a warning if it fails.")
@click.option("--checkpoint-every", type=click.IntRange(min=1), metavar="N",
              help="Save the training state every N steps.")
@click.option("--checkpoint-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where checkpoints go (default: $ZOO_HOME/runs/NAME, or OUTPUT.checkpoints).")
@click.option("--resume", is_flag=True, help="Continue from the newest checkpoint of this run.")
@click.option("--force", is_flag=True,
              help="Replace the zoo artifact already at -o (anything else there is refused).")
@click.option("--columns", metavar="A,B,C",
              help="With a CSV: the columns to model (header names or 0-based indices).")
@click.option("--drop-columns", metavar="A,B", help="With a CSV: columns to leave out.")
@conditional.train_options
@click.option("--drop-missing", is_flag=True,
              help="With a CSV: drop rows with a missing value (empty, NA, NaN) and say how many.")
def train(name: str, data: str | None, assignments: tuple[str, ...], steps: int | None,
          batch_size: int | None, lr: float | None, seed: int | None, output: Path | None,
          quiet: bool, nproc: int, device: str, bf16: bool, compile_: bool | None,
          checkpoint_every: int | None, checkpoint_dir: Path | None, resume: bool,
          force: bool, columns: str | None = None, drop_columns: str | None = None,
          drop_missing: bool = False, **context: Any) -> None:
    """Train a catalog model from its recipe, or a family on your data, and save the artifact.

    Your data: `zoo train realnvp --data points.csv -o my-flow` (shape and levels are read
    off the data and stated; -c KEY=VALUE changes any config key).
    Several processes: `--nproc N`, or `torchrun --nproc-per-node N -m zoo train NAME`.
    A killed run continues with `--resume` when it was saved with `--checkpoint-every`.
    """
    from zoo import api
    from zoo.training import distributed
    from zoo.training.options import TrainOptions

    options = TrainOptions.of(steps=steps, seed=seed, progress=False if quiet else None,
                              nproc=nproc, device=device, bf16=bf16, compile=compile_,
                              resume=resume, checkpoint_every=checkpoint_every,
                              checkpoint_dir=checkpoint_dir, overwrite=force)
    if data is not None:
        from zoo.api.owndata import parse_assignments, say_to_stderr, train_to
        from zoo.data.columns import ColumnChoice

        if output is None:
            raise click.UsageError("--data needs -o/--output DIR: where the artifact goes")
        choice = ColumnChoice.parse(columns, drop_columns, drop_missing)
        path = train_to(name, data, output, options, config=parse_assignments(assignments),
                        columns=choice if choice.given else None, batch_size=batch_size,
                        lr=lr, say=say_to_stderr, **conditional.train_arguments(**context))
    else:
        if assignments or batch_size is not None or lr is not None or columns or drop_columns \
                or drop_missing or conditional.train_arguments(**context):
            raise click.UsageError("-c, --batch-size and --lr go with --data (so do --columns, "
                                   "--drop-columns and --drop-missing); a catalog model trains "
                                   "from its recipe")
        path = api.train_entry(name, options, output=output)
    # One line of output per run: from rank 0, or from the launcher that started the workers.
    if distributed.is_main_process() and not os.environ.get(distributed.LAUNCHED_BY_ZOO):
        click.echo(str(path))


@cli.command()
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("-n", "count", type=int, help="Number of samples (default 64; per class with "
              "--label all, default 10).")
@click.option("-o", "--output", type=click.Path(path_type=Path),
              help="Where to write: .png (plot or image grid), .pt, .npy, .csv, .safetensors "
                   "(default: NAME-samples.png in this folder).")
@click.option("--temperature", "-t", type=float, default=1.0, show_default=True,
              help="Spread of the samples: 1 is the model itself, below 1 sharper (more "
                   "typical samples), above 1 more varied.")
@click.option("--seed", type=SEED, help="Seed for reproducible samples (0 .. 2**63-1); "
                                         "without it every run draws different samples.")
@click.option("--complete", "complete", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Complete this image (.png, or .npy/.safetensors of levels 0..C-1) instead "
                   "of sampling freely; a .png output shows given | mask | completions.")
@click.option("--keep", type=click.Choice(["top-half", "left-half", "bottom-half", "right-half"]),
              help="With --complete: which part of the image is known  [default: top-half].")
@click.option("--keep-mask", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              metavar="MASK", help="With --complete: the known pixels, as a .png (white = "
                                   "known) or a .npy of 0/1, instead of --keep.")
@click.option("--sweeps", type=click.IntRange(min=1), metavar="N",
              help="With --complete: MCMC sweeps when the known part does not come first in "
                   "the model's order (default: zoo.infer.completion.DEFAULT_SWEEPS).")
@click.option("--nrow", type=click.IntRange(min=1), metavar="N",
              help="Image grids: N images a row (default: a square grid; completions: given, "
                   "mask and 8 completions a row).")
@click.option("--resize", is_flag=True,
              help="With --complete: scale a given image or mask PNG of another size to the "
                   "model's (refused otherwise).")
# 64 is zoo.pictures.MAX_SCALE (not imported here: it would import torch for --help).
@click.option("--scale", type=click.IntRange(1, 64), metavar="N",
              help="Image grids: draw each pixel as an NxN block (default: the grid is at "
                   "least 512 pixels wide).")
@click.option("--data", "data", metavar="SOURCE",
              help="Continuous models, .png: draw the samples over these rows (the training "
                   "data), on the same axes.")
@conditional.sample_options
def sample(name: str, count: int | None, output: Path | None, temperature: float,
           seed: int | None, complete: Path | None, keep: str | None, keep_mask: Path | None,
           sweeps: int | None, nrow: int | None, scale: int | None, resize: bool,
           data: str | None = None, label: str | None = None, given_values: str | None = None,
           given_file: Path | None = None) -> None:
    """Draw samples from a model and save them, or complete a partly known image."""
    from zoo import api
    from zoo.cli.sample_files import check_format, check_grid_options, data_rows, draw, write_samples

    if complete is None and (keep or keep_mask or sweeps or resize):
        raise click.UsageError("--keep, --keep-mask, --sweeps and --resize need --complete IMAGE")
    if complete is not None and data is not None:
        raise click.UsageError("--data draws samples over data; --complete completes an image")
    if output is None:  # `zoo sample .` is named after the folder, not ''
        from zoo.names import is_path

        stem = Path(name).expanduser().resolve().name if is_path(name) else Path(name).name
        output = Path(f"{stem.replace(':', '_').replace('@', '_') or 'model'}-samples.png")
    check_format(output)
    model = api.load(name)
    check_grid_options(model, output, nrow=nrow, scale=scale)
    context, count, per_class = conditional.sample_context(model, count, label, given_values,
                                                           given_file)
    count = 64 if count is None else count
    if context is not None and complete is None:
        conditional.sample_to(model, count, context, output, per_class=per_class,
                              temperature=temperature, seed=seed, nrow=nrow, scale=scale)
        return
    if complete is not None:
        from zoo.cli.completion_files import complete_image, write_completion

        notes: list[str] = []
        given, mask, done = complete_image(model, count, complete, keep=keep, keep_mask=keep_mask,
                                           temperature=temperature, seed=seed, sweeps=sweeps,
                                           resize=resize, notes=notes)
        for note in notes:  # what --resize scaled
            click.echo(f"zoo: {note}", err=True)
        write_completion(model, given, mask, done.samples, output, nrow=nrow, scale=scale)
        click.echo(done.record.line())
        click.echo(f"wrote {len(done.samples)} completions to {output}")
        return
    rows = None
    if data is not None:  # checked and read before anything is drawn
        rows = data_rows(model, output, data)
    samples = draw(model, count, temperature=temperature, seed=seed)
    write_samples(model, samples, output, nrow=nrow, scale=scale, data=rows,
                  data_label=f"rows of {Path(str(data)).name}")
    click.echo(f"wrote {len(samples)} samples to {output}")


@cli.command("eval")
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("--split", default="test", show_default=True, type=click.Choice(["train", "test"]))
@click.option("--dataset", help="Dataset to score on (default: the one the model was trained on).")
@click.option("--data", "data", metavar="SOURCE", help="Your own data to score instead (a file, "
              "folder or hf-dataset:ORG/NAME, as for zoo train --data).")
@click.option("--samples", "-k", type=click.IntRange(min=1, max=100_000), default=1,
              show_default=True,
              help="Dequantized models: importance-weighted draws per example (tighter bound).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def eval_cmd(name: str, split: str, dataset: str | None, data: str | None, samples: int,
             as_json: bool) -> None:
    """Score a model: NLL in nats per example (with standard error) and bits/dim.

    "≤" marks an upper bound: a continuous model of discrete data, uniformly dequantized
    (`--samples K` tightens it).
    """
    from zoo import api

    if data is not None:
        if dataset is not None:
            raise click.UsageError("--data and --dataset: choose one")
        if samples != 1:
            raise click.UsageError("--samples applies to a catalog dataset, not to --data")
        from zoo.api.scoring import as_model, evaluate_data, grid_note

        model = as_model(name)
        result = evaluate_data(model, data)
        table_note = grid_note(model)
        split = "data"
    else:
        table_note = None
        result = api.evaluate(name, split=split, dataset=dataset, samples=samples)
    if as_json:
        emit_json(result.as_dict())
        return
    le = "≤ " if result.bound else ""
    click.echo(f"{split} NLL    {le}{result.nll:.4f} ± {result.stderr:.4f} nats per example")
    click.echo(f"bits/dim    {le}{result.bits_per_dim:.4f}")
    click.echo(f"n           {result.n}")
    if result.bound and table_note is not None:
        click.echo(f"bound       {table_note}")
    elif result.bound:
        draws = ("1 uniform dequantization draw" if result.samples == 1 else
                 f"importance-weighted over {result.samples} uniform dequantization draws")
        click.echo(f"bound       upper bound on the discrete NLL ({draws} per example)")


@cli.command()
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("--data", "data", required=True, metavar="SOURCE",
              help="The examples to score (a file, folder or hf-dataset:ORG/NAME).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the scores to OUT.csv or OUT.npy (default: CSV on stdout).")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path),
              help="Also draw histograms (PNG) of the scores, the reference's and the "
                   "training examples', on one axis, the training 1st percentile marked.")
@click.option("--batch-size", type=click.IntRange(min=1),
              help="Examples per batch (default: up to 4096, fewer for large discrete models).")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), metavar="FILE",
              help="Label-conditional models: a .npy of the examples' labels.")
@click.option("--reference", metavar="SOURCE",
              help="Data known to be normal: also print the AUROC of --data against it.")
def score(name: str, data: str, output: Path | None, plot: Path | None,
          batch_size: int | None, labels_file: Path | None = None,
          reference: str | None = None) -> None:
    """One log-density in nats per example of --data, in input order (anomaly scores).

    With each score, its percentile against the training examples the artifact records
    (CSV column train_percentile). Also says what fraction of the examples falls below the
    training data's 1st-percentile score (on stderr when the scores go to stdout).
    """
    from zoo.api import scoring

    if output is not None:
        scoring.check_output(output)
    if plot is not None and plot.suffix.lower() != ".png":
        raise click.UsageError(f"--plot {plot}: the histogram is written as .png")
    model = scoring.as_model(name)
    scores = scoring.score(model, data, batch_size=batch_size,
                           labels=str(labels_file) if labels_file else None)
    percent = scoring.percentiles(model, scores)  # None: the artifact records no distribution
    summary = scoring.summarize_scores(scores, scoring.threshold_of(model))
    notes = [summary.line()] + ([scoring.percentile_note(model)] if percent is not None else [])
    against = None
    if reference is not None:
        against = scoring.score(model, reference, batch_size=batch_size)
        notes.append(scoring.auroc_line(against, scores))
    if getattr(model, "likelihood_bound", False):
        notes.append("the scores are lower bounds on log p (a continuous model of discrete "
                     "data, one uniform dequantization draw per example)")
    from zoo.cli.output_files import together

    with together(output, plot) as (output_part, plot_part):  # both files, or neither
        if plot_part is not None:
            scoring.plot_scores(scores, model, plot_part, reference=against,
                                name=Path(data).name, reference_name=f"{reference} (reference)")
        if output_part is not None:
            scoring.write_scores(scores, output_part, percent)
    if output is None:
        click.echo(scoring.csv_text(scores, percent), nl=False)
        for note in notes:
            click.echo(note, err=True)
        return
    click.echo(f"wrote {len(scores)} scores to {output}")
    for note in notes:
        click.echo(note)


@cli.command()
@click.argument("name", shell_complete=complete_name)
@click.option("--repo", required=True, help="Hub repository, ORG/REPO.")
@click.option("--revision", help="Branch to push to (default: main).")
@click.option("--private", is_flag=True, help="Create the repository as private.")
@click.option("--message", "-m", help="Commit message.")
def push(name: str, repo: str, revision: str | None, private: bool, message: str | None) -> None:
    """Publish an artifact (catalog name or directory) to the Hugging Face Hub."""
    from zoo import api

    result = api.push(name, repo=repo, revision=revision, private=private, message=message)
    click.echo(f"pushed to {result.commit_url}")
    click.echo(f"sha256 of the weights (for registry.yaml): {result.sha256}")


cli.add_command(completion)
cli.add_command(conditional.classify)
cli.add_command(plugin_group)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="zoo")


if __name__ == "__main__":
    sys.exit(main())
