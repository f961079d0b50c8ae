"""The command line of conditional models: the options that give a context when training
(``--given``, ``--label-column``, ``--labels``, ``--unconditional``) and when sampling
(``--label``, ``--given a=1.5``, ``--given-file``), the per-class picture, and ``zoo
classify``."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from zoo.cli.completion_names import complete_name
from zoo.cli.process import threads_option

if TYPE_CHECKING:
    from torch import Tensor

    from zoo.plugin.model import ZooModel

#: Samples per class in ``zoo sample --label all`` unless ``-n`` says otherwise.
PER_CLASS = 10


def train_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``zoo train --data``'s context options; the command receives them as keywords."""
    for option in reversed([
        click.option("--given", "given_columns", metavar="A,B",
                     help="With a CSV: these columns are the context; the model learns "
                          "p(other columns | these)."),
        click.option("--label-column", metavar="COL",
                     help="With a CSV: this column (any values) is a label; the model learns "
                          "p(other columns | label)."),
        click.option("--labels", "labels_file", type=click.Path(path_type=Path),
                     metavar="FILE", help="A .npy of one integer label per example."),
        click.option("--unconditional", is_flag=True,
                     help="Ignore the labels the data carries (an image folder's subfolders)."),
    ]):
        command = option(command)
    return command


def train_arguments(given_columns: str | None = None, label_column: str | None = None,
                    labels_file: Path | None = None, unconditional: bool = False
                    ) -> dict[str, Any]:
    """The options above as ``zoo.fit``/``train_to`` keywords (only those given)."""
    out: dict[str, Any] = {}
    if given_columns:
        out["given"] = tuple(c.strip() for c in given_columns.split(",") if c.strip())
    if label_column:
        out["label_column"] = label_column
    if labels_file is not None:
        out["context"] = str(labels_file)
    if unconditional:
        out["unconditional"] = True
    return out


def sample_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``zoo sample``'s context options."""
    for option in reversed([
        click.option("--label", metavar="CLASS|all",
                     help="Label-conditional models: draw this class (a name or an index); "
                          "'all' draws one labelled row per class."),
        click.option("--given", "given_values", metavar="A=1.5,B=0.2",
                     help="Conditional models: the context values, by name."),
        click.option("--given-file", type=click.Path(path_type=Path), metavar="CSV",
                     help="Conditional models: one sample per row of this CSV of contexts."),
    ]):
        command = option(command)
    return command


def sample_context(model: ZooModel, count: int | None, label: str | None,
                   given_values: str | None, given_file: Path | None
                   ) -> tuple[Any, int | None, bool]:
    """(context for ``model.sample``, the number of samples, one row per class?), checked
    before anything is drawn: a label that is not a class, a context for an unconditional
    model, a missing or extra name are one line each."""
    import torch

    spec = model.context_spec
    asked = [flag for flag, value in (("--label", label), ("--given", given_values),
                                      ("--given-file", given_file)) if value is not None]
    if len(asked) > 1:
        raise click.UsageError(f"{' and '.join(asked)}: give one context")
    if asked and not spec:
        raise click.UsageError(f"{asked[0]}: this model is unconditional; it takes no context")
    if label is not None:
        if spec.kind != "label":
            raise click.UsageError(f"--label: this model is conditional on {spec.describe()}; "
                                   "use --given")
        if label == "all":
            per = count or PER_CLASS
            return (torch.arange(spec.size).repeat_interleave(per), per * spec.size, True)
        try:
            return spec.label_index(label), count, False
        except ValueError as exc:
            raise click.UsageError(f"--label {exc}") from None
    if given_values is not None or given_file is not None:
        if spec.kind != "vector":
            raise click.UsageError(f"--given: this model is conditional on {spec.describe()}; "
                                   "use --label")
        if given_file is not None:
            rows = read_context_file(given_file, spec.names)
            if count is not None and count != len(rows):
                raise click.UsageError(f"--given-file {given_file} has {len(rows)} rows: one "
                                       "sample each (leave out -n)")
            return rows, len(rows), False
        return parse_given(given_values, spec.names), count, False
    if spec.kind == "vector":
        raise click.UsageError(f"this model is conditional on {spec.describe()}: pass "
                               "--given NAME=VALUE,... or --given-file CSV")
    return None, count, False


def parse_given(text: str, names: tuple[str, ...]) -> Tensor:
    """``a=1.5,b=0.2`` as the context vector ``[d]`` in the model's order of ``names``."""
    import torch

    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or not key:
            raise click.UsageError(f"--given {part!r}: expected NAME=VALUE")
        if key not in names:
            raise click.UsageError(f"--given {key}: not a context of this model (it takes: "
                                   f"{', '.join(names)})")
        try:
            number = float(value)
        except ValueError:
            raise click.UsageError(f"--given {key}={value}: not a number") from None
        if not math.isfinite(number):
            raise click.UsageError(f"--given {key}={value}: not a finite number")
        values[key] = number
    missing = [n for n in names if n not in values]
    if missing:
        raise click.UsageError(f"--given: no value for {', '.join(missing)} (the model takes "
                               f"{', '.join(names)})")
    return torch.tensor([values[n] for n in names])


def read_context_file(path: Path, names: tuple[str, ...]) -> Tensor:
    """The context rows of a CSV with the model's context columns (by name)."""
    import numpy as np
    import torch

    from zoo.data.columns import ColumnChoice, choose
    from zoo.data.tabular import read_table
    from zoo.errors import DataError

    if not path.is_file():
        raise DataError(f"{path}: no such file (--given-file takes a CSV of contexts)")
    table = read_table(path)
    missing = [n for n in names if n not in (table.header or [])]
    if missing:
        raise DataError(f"{path}: no column {missing[0]!r} (the model's context is "
                        f"{', '.join(names)})")
    source = choose(table, ColumnChoice(names), recorded=names).source
    rows = source.read(np.arange(len(source))).float()
    if not len(rows):
        raise DataError(f"{path}: no rows")
    return torch.as_tensor(rows)


def sample_to(model: ZooModel, count: int, context: Any, output: Path, *, per_class: bool,
              temperature: float, seed: int | None, nrow: int | None,
              scale: int | None) -> None:
    """``zoo sample`` of a conditional model: draw, write (one labelled row per class for
    ``--label all``), and say so."""
    from zoo.cli.sample_files import draw, is_discrete, write_samples

    if per_class and (not is_discrete(model) or output.suffix.lower() != ".png"):
        raise click.UsageError("--label all draws a picture of image samples: use -o NAME.png")
    samples = draw(model, count, temperature=temperature, seed=seed, context=context)
    if per_class:
        write_class_rows(model, samples, output, scale=scale)
    else:
        write_samples(model, samples, output, nrow=nrow, scale=scale)
    click.echo(f"wrote {len(samples)} samples to {output}")


def write_class_rows(model: ZooModel, samples: Tensor, path: Path, *,
                     scale: int | None = None) -> None:
    """One labelled row per class (``--label all``): discrete images only."""
    from zoo import pictures
    from zoo.cli.sample_files import atomic_path

    names = model.context_spec.names
    rows = samples.chunk(len(names))
    with atomic_path(path) as tmp:
        pictures.save_png(pictures.class_rows(rows, names, model.config.levels, scale=scale),
                          tmp)


@click.command()
@threads_option
@click.argument("name", shell_complete=complete_name)
@click.option("--data", "data", required=True, metavar="SOURCE",
              help="The examples to classify (a file, or a folder with one subfolder per class).")
@click.option("--labels", "labels_file", type=click.Path(path_type=Path), metavar="FILE",
              help="A .npy of the true labels, for the accuracy.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write predictions.csv: each example's class and its posterior probability.")
def classify(name: str, data: str, labels_file: Path | None, output: Path | None) -> None:
    """Classify examples with a label-conditional model by Bayes' rule:
    argmax_y log p(x|y) + log p(y). Prints the accuracy when the data has labels."""
    from zoo.api.scoring import as_model, classify_data

    if output is not None and output.suffix.lower() != ".csv":
        raise click.UsageError(f"-o {output}: predictions are written as .csv")
    model = as_model(name)
    if model.context_spec.kind != "label":
        raise click.UsageError(f"{name}: classify needs a label-conditional model; this one is "
                               f"conditional on {model.context_spec.describe()}")
    result = classify_data(model, data, labels=str(labels_file) if labels_file else None)
    if output is not None:
        write_predictions(result, output)
        click.echo(f"wrote {len(result.predictions)} predictions to {output}")
    click.echo(result.line())


def write_predictions(result: Any, path: Path) -> None:
    """``index,class,probability`` per example, written atomically."""
    from zoo.cli.sample_files import atomic_path

    probability = result.log_posterior.exp().max(dim=1).values
    lines = ["index,class,probability"]
    lines += [f"{i},{result.classes[int(k)]},{float(p):.6f}"
              for i, (k, p) in enumerate(zip(result.predictions, probability))]
    with atomic_path(path) as tmp:
        Path(tmp).write_text("\n".join(lines) + "\n")
