"""Training on the user's own data: ``zoo.fit`` and ``zoo train FAMILY_OR_ENTRY --data``.

A family name starts from the family's defaults and the default ``Recipe``; a catalog entry
starts from its config and recipe with the data replaced. The data decides ``shape`` (and
``levels`` for discrete families, ``zoo.data.infer``); ``config`` overrides any key. The
trainer reads the data from its storage batch by batch (``zoo.data.source``).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import config as _config
from zoo.catalog.recipe import Recipe
from zoo.errors import ConfigError, ZooError
from zoo.training.options import TrainOptions

if TYPE_CHECKING:
    from zoo.data.source import Examples
    from zoo.plugin.family import Family
    from zoo.plugin.model import ZooModel

#: Training rows drawn over the samples of a model of 2-D points (its ``samples.png``).
DATA_POINTS = 2_000
RECIPE_PREFIX = "recipe."


@dataclass
class Plan:
    """Everything a run on user data needs, decided before anything is built."""

    family: Family
    config: Any
    recipe: Recipe
    examples: Examples
    note: str
    entry: str | None = None
    #: Lines about the data beyond ``note``: columns left out, rows dropped, grids found.
    notes: list[str] = field(default_factory=list)
    #: The table's chosen columns (recorded in the artifact, applied again by scoring).
    columns: list[str] | None = None
    #: Where the model's context came from (``{"label_column": "species"}``, ...): recorded
    #: in the artifact so that scoring reads it the same way.
    context_source: dict[str, Any] = field(default_factory=dict)
    #: Other configs to train on the same data (``Family.table_alternatives``); the one with
    #: the best validation NLL is kept.
    alternatives: list[Any] = field(default_factory=list)


def parse_assignments(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (values parsed as YAML: ``hidden=[64]``, ``levels=2``) as a dict."""
    import yaml

    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"-c {pair!r}: expected KEY=VALUE, e.g. -c hidden=[64]")
        try:
            out[key] = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"-c {key}: {text!r} is not a YAML value "
                              f"({' '.join(str(exc).split())[:200]})") from None
    return out


def split_overrides(config: Mapping[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Family keys and ``recipe.KEY`` keys, apart."""
    family: dict[str, Any] = {}
    recipe: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key.startswith(RECIPE_PREFIX):
            recipe[key[len(RECIPE_PREFIX):]] = value
        else:
            family[key] = value
    return family, recipe


def starting_point(name: str) -> tuple[Family, dict[str, Any], Recipe, str | None]:
    """(family, base config, base recipe, entry name) of a family name or a catalog entry."""
    from zoo.api import get_entry
    from zoo.catalog import catalog
    from zoo.plugin.registry import get_family

    if name in catalog().names():
        entry = get_entry(name)
        return get_family(entry.family), dict(entry.config), entry.recipe, entry.name
    return get_family(name), {}, Recipe(), None


def plan(family_or_entry: str, data: Any, *, config: Mapping[str, Any] | None = None,
         recipe: Mapping[str, Any] | Recipe | None = None, steps: int | None = None,
         batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
         split: str | None = None, columns: Any = None, context: Any = None,
         given: Sequence[str] = (), label_column: str | None = None,
         unconditional: bool = False) -> Plan:
    """Resolve family, config and recipe for ``data``; check the data's values once.

    A CSV goes through ``zoo.data.columns`` (``columns``: a ``ColumnChoice``); a family
    that has defaults for tables (``config_for_table``) starts from them on vector data,
    with the columns' grids, and the recipe's budget follows the rows (``table_budget``),
    unless a catalog entry is the starting point or the user set the keys.

    Context (``zoo.data.contexts``): ``context`` (labels or vectors, or a ``.npy`` of
    labels), a table's ``given`` columns or ``label_column``, or the subfolders of an image
    folder make the model conditional, unless ``unconditional``."""
    from zoo.api.data_defaults import ALTERNATIVES, image_defaults, table_defaults
    from zoo.data.columns import open_table
    from zoo.data.open import open_data

    family, base, base_recipe, entry = starting_point(family_or_entry)
    overrides, recipe_keys = split_overrides(config)
    if isinstance(recipe, Recipe):
        base_recipe = recipe
    elif recipe:
        recipe_keys = {**dict(recipe), **recipe_keys}
    for key, value in (("steps", steps), ("batch_size", batch_size), ("lr", lr), ("seed", seed)):
        if value is not None:
            recipe_keys[key] = value
    if given or label_column:
        from zoo.data.contexts import table_with_context

        chosen, found = table_with_context(data, columns, given, label_column)
    else:
        chosen = open_table(data, columns, training=True)
        found = None
    source = chosen.source if chosen is not None else open_data(data, split=split)
    if found is None:
        found = data_context(source, context)
    kind = data_kind(family, base, overrides, source)
    fitted = fit_entry_levels(source, kind, base, overrides, entry)
    own_recipe = isinstance(recipe, Recipe)
    eval_batch_given = "eval_batch_size" in recipe_keys
    table, notes = table_defaults(family, entry, kind, fitted.config, chosen, overrides,
                                  recipe_keys, own_recipe)
    extra = table.pop(ALTERNATIVES, [])
    if not table:
        table, notes = image_defaults(family, entry, fitted.config, len(source), overrides,
                                      recipe_keys, own_recipe)
    examples, conditioning, lines = fitted.examples, {}, []
    if found is not None and unconditional:
        lines.append(f"{found.describe()}: ignored (--unconditional)")
    elif found is not None:
        conditioning, examples, line = conditional_setup(family, found, fitted.examples)
        lines.append(line)
    else:
        conditioning = {"classes": [], "context": []} if unconditional else {}
    cfg = family.parse_config({**base, **fitted.config, **table, **overrides, **conditioning},
                              where=f"{family.name} config")
    if entry is None and not eval_batch_given and not own_recipe:
        # The default (4096) suits vectors; a large discrete model's logits need fewer, and
        # so may its activations (a family's defaults for images say so).
        from zoo.api.scoring import default_batch

        recipe_keys["eval_batch_size"] = min(
            recipe_keys.get("eval_batch_size", base_recipe.eval_batch_size), default_batch(cfg))
    run_recipe = _config.parse(Recipe, {**_config.to_dict(base_recipe), **recipe_keys},
                               where="recipe")
    first, rest = (lines[0], [fitted.note, *lines[1:]]) if lines else (fitted.note, [])
    others = [family.parse_config({**family.config_dict(cfg), **keys},
                                  where=f"{family.name} config") for keys in extra
              if not set(keys) & set(overrides)]
    return Plan(family, cfg, run_recipe, examples, first, entry,
                rest + (chosen.notes if chosen is not None else []) + notes,
                chosen.columns if chosen is not None else None,
                context_record(given, label_column, found), others)


def data_context(source: Any, context: Any) -> Any:
    """The context ``context`` gives (values, or a ``.npy`` path), or the labels an image
    folder's subfolders give; None when there is none."""
    from zoo.data import contexts
    from zoo.data.images import ImageFolderSource

    if context is None:
        return contexts.from_image_folder(source) if isinstance(source, ImageFolderSource) \
            else None
    if isinstance(context, (str, os.PathLike)):
        return contexts.from_labels_file(context)
    return contexts.from_values(context, "context")


def conditional_setup(family: Family, found: Any, examples: Examples
                      ) -> tuple[dict[str, Any], Examples, str]:
    """The config keys of a model conditioned on ``found``, the examples with their
    contexts, and the line that says so (``zoo train``'s first line)."""
    if found.kind not in family.contexts:
        what = "labels" if found.kind == "label" else "a context vector"
        raise ConfigError(f"{found.origin} gives {what}, and family {family.name} cannot be "
                          f"conditioned on them (it takes: "
                          f"{', '.join(family.contexts) or 'no context'}); pass "
                          "--unconditional to ignore them")
    key = "classes" if found.kind == "label" else "context"
    kind = "label-conditional" if found.kind == "label" else "conditional"
    line = (f"a {kind} model: {found.describe()}"
            + (" (--unconditional ignores them)" if found.kind == "label" else ""))
    return ({key: list(found.names)}, found.attach(examples), line)


def context_record(given: Sequence[str], label_column: str | None, found: Any) -> dict[str, Any]:
    """What scoring needs to read the context again, beyond the config's names."""
    if found is None:
        return {}
    if label_column:
        return {"label_column": label_column}
    if given:
        return {"given": list(given)}
    return {"context_from": found.origin}


def fit_entry_levels(source: Any, kind: str, base: Mapping[str, Any],
                     overrides: Mapping[str, Any], entry: str | None) -> Any:
    """``fit_data``, keeping a catalog entry's ``levels`` when the data fits them (digits
    0..16 as uint8 keep ``levels: 17`` rather than the dtype's 256), and saying in the note
    when the data overrides the entry's value instead."""
    from zoo.data.infer import fit_data
    from zoo.errors import DataError

    levels = base.get("levels")
    if entry is None or kind != "discrete" or "levels" in overrides or not isinstance(levels, int):
        return fit_data(source, kind, overrides)
    try:
        fitted = fit_data(source, kind, {**overrides, "levels": levels})
    except DataError:
        fitted = fit_data(source, kind, overrides)
        fitted.note += (f"; the data's values do not fit {entry}'s levels {levels}, so levels "
                        f"{fitted.config.get('levels')} replaces it")
        return fitted
    fitted.note = fitted.note.replace("(as given)", f"({entry}'s levels, which the data fits)")
    return fitted


def data_kind(family: Family, base: Mapping[str, Any], overrides: Mapping[str, Any],
              source: Any) -> str:
    """How ``family`` takes this data: as its config says (``levels`` makes a continuous flow
    dequantize discrete data), or, when the config does not say, discrete for integer
    images ``[C, H, W]`` if the family can model discrete levels at all."""
    from zoo.data.infer import model_shape

    if family.data_kind == "discrete":
        return "discrete"
    # As a discrete image: [H, W] examples get their channel, [1, H, W].
    trial = {**base, "shape": list(model_shape(source, "discrete")), **overrides}
    with contextlib.suppress(ZooError, ValueError, TypeError):
        if family.data_kind_of(trial) == "discrete":
            return "discrete"
        if ("levels" not in trial and source.dtype.kind in "uib" and len(trial["shape"]) == 3
                and family.data_kind_of({**trial, "levels": 256}) == "discrete"):
            return "discrete"
    return family.data_kind


def fit(family_or_entry: str, data: Any, *, config: Mapping[str, Any] | None = None,
        recipe: Mapping[str, Any] | Recipe | None = None, steps: int | None = None,
        batch_size: int | None = None, lr: float | None = None, seed: int | None = None,
        progress: bool | None = None, columns: Any = None, context: Any = None,
        given: Sequence[str] = (), label_column: str | None = None,
        unconditional: bool = False, **train_options: Any) -> ZooModel:
    """Train a model of a family (or catalog entry) on ``data`` and return it.

    ``data`` is a path (``.csv``, ``.npy``, ``.safetensors``, ``.parquet``, a folder of images,
    a saved ``datasets`` folder), ``hf-dataset:ORG/NAME[@REV]``, a tensor, a numpy array or a
    ``torch.utils.data.Dataset``. ``config`` overrides family config keys (``recipe.KEY``
    keys, or ``recipe=``, override the recipe). The returned model carries ``fit_result``
    and ``metrics`` (validation NLL, the training data's 1st-percentile log-density).
    ``train_options`` go to the trainer (``device``, ``bf16``, ``checkpoint_dir``, ...).
    ``columns`` (a ``zoo.data.columns.ColumnChoice``) chooses a CSV's columns.

    Conditional models: ``context`` gives each example's label (integers, ``[N]``) or
    context vector (floats, ``[N, d]``), as a tensor, an array or a ``.npy`` path; a CSV's
    ``given`` columns or ``label_column`` do the same from the table, and an image folder
    with one subfolder per class gives labels by itself. The model then learns
    ``p(x | context)``; ``unconditional=True`` ignores labels the data carries.
    """
    p = plan(family_or_entry, data, config=config, recipe=recipe, steps=steps,
             batch_size=batch_size, lr=lr, seed=seed, columns=columns, context=context,
             given=given, label_column=label_column, unconditional=unconditional)
    return train_plan(p, progress=progress, **train_options)


def train_plan(p: Plan, *, progress: bool | None = None, **train_options: Any) -> ZooModel:
    """Build and train the model of a plan; rank 0 also computes its metrics. With
    alternatives (one process, no checkpoints), each is trained too, and one replaces the
    defaults when it is significantly better on the validation rows (``preferred``);
    ``model.selection`` says what was compared."""
    import torch

    from zoo.api import alternatives
    from zoo.training import distributed
    from zoo.training.loop import train_model

    configs = [p.config]
    if p.alternatives and not distributed.context().is_distributed and not (
            train_options.get("checkpoint_every") or train_options.get("resume")):
        configs += p.alternatives
    runs = []
    for config in configs:
        torch.manual_seed(p.recipe.seed)
        model = p.family.build(config)
        result = train_model(p.family, model, p.examples, p.recipe, progress=progress,
                             **train_options)
        runs.append((model, result))
    model, result = runs[0] if len(runs) == 1 else alternatives.preferred(p, runs)
    if len(runs) > 1:
        model.selection = alternatives.selection_line(p, runs, model)
    model.fit_result = result
    if distributed.is_main_process():
        model.metrics, model.log_prob_distribution = run_metrics(model, p, result)
    return model


def run_metrics(model: ZooModel, p: Plan, result: Any) -> tuple[dict[str, float], dict]:
    """Validation/training NLL and the anomaly threshold (the 1st percentile of log p over
    up to ``zoo.artifact.scores.MAX_EXAMPLES`` training examples), and the distribution of
    log p over training and validation examples that the artifact records."""
    import torch

    from zoo.api.scoring import THRESHOLD_METRIC
    from zoo.artifact.scores import record, scored_sample
    from zoo.training.loop import split_train

    splits = split_train(p.examples, p.recipe)
    scored = {name: scored_sample(model, part, seed=p.recipe.seed,
                                  batch_size=p.recipe.eval_batch_size)
              for name, part in (("train", splits.train), ("val", splits.val))
              if part is not None and len(part)}
    metrics = {"train_n": float(len(p.examples)),
               THRESHOLD_METRIC: float(torch.quantile(scored["train"], 0.01))}
    if getattr(result, "val_nll", None) is not None:
        metrics["val_nll"] = float(result.val_nll)
    if getattr(result, "train_nll", None) is not None:
        metrics["train_nll"] = float(result.train_nll)
    baseline = gaussian_baseline(p)
    if baseline is not None:
        metrics["val_gaussian_nll"] = baseline
    return metrics, record(scored)


#: Tables up to this many values get the Gaussian baseline (it reads them all, in float64).
BASELINE_VALUES = 50_000_000


def gaussian_baseline(p: Plan) -> float | None:
    """The validation NLL of a full-covariance Gaussian fitted to the training split, on the
    rows and with the grid noise the model saw: the number a model of a table must beat.
    None for data that is not a table of vectors, or without a validation split."""
    import numpy as np

    from zoo.data.columns import gaussian_nll, jittered, read_rows
    from zoo.training.loop import split_train

    shape = getattr(p.config, "shape", ())
    if p.columns is None or len(shape) != 1 or len(p.examples) * shape[0] > BASELINE_VALUES:
        return None
    splits = split_train(p.examples, p.recipe)
    if splits.val is None:
        return None
    grid = getattr(p.config, "grid", None)
    rng = np.random.default_rng(p.recipe.seed)
    train = jittered(read_rows(splits.train.source), grid, rng)
    val = jittered(read_rows(splits.val.source), grid, rng)
    try:
        return gaussian_nll(train, val)
    except np.linalg.LinAlgError:
        return None


def train_to(family_or_entry: str, data: Any, output: str | os.PathLike,
             options: TrainOptions, *, config: Mapping[str, Any] | None = None,
             batch_size: int | None = None, lr: float | None = None,
             say: Callable[[str], None] | None = None, columns: Any = None,
             **context: Any) -> Path:
    """``zoo train FAMILY_OR_ENTRY --data SOURCE -o DIR``: train and write an artifact at ``output``.

    Nothing is written at ``output`` unless training succeeds (a staging folder beside it is
    removed on any error). ``output`` may be new or an empty folder; a zoo artifact there is
    replaced only with ``options.overwrite``; a file, a folder of other files, the data
    being read and the store are refused before training (``zoo.artifact.destination``).
    ``options.nproc`` > 1 starts that many local processes (DDP); under torchrun every
    process calls this and rank 0 writes. ``say(line)`` gets the line that states what the
    data decided (printed by ``zoo train``). ``context``: ``plan``'s context keywords
    (``given``, ``label_column``, ``context``, ``unconditional``).
    """
    from zoo.api import publish_built
    from zoo.artifact.destination import check_destination
    from zoo.training import distributed
    from zoo.training.checkpoint import remove_all as remove_checkpoints

    final = check_destination(output, overwrite=options.overwrite, reading=data_paths(data))
    options = options.with_checkpoint_dir(final.parent / f"{final.name}.checkpoints")
    if options.nproc > 1:
        distributed.launch_local(options.nproc, data_train_command(
            family_or_entry, data, final, options, config=config, batch_size=batch_size, lr=lr,
            columns=columns, **context))
        return final
    p = plan(family_or_entry, data, config=config, steps=options.steps, batch_size=batch_size,
             lr=lr, seed=options.seed, columns=columns, **context)
    distributed.check_batch(p.recipe.batch_size, distributed.context().world_size)
    main = distributed.is_main_process()
    if say is not None and main:
        for line in (p.note, *p.notes):
            say(line)
    if not main:
        train_plan(p, progress=options.progress, **options.trainer_kwargs())
        return final

    trained: list[ZooModel] = []

    def build(folder: Path) -> None:
        trained.append(train_plan(p, progress=options.progress, **options.trainer_kwargs()))
        write_artifact(folder, trained[0], p, data, title=final.name or "model")

    path = publish_built(final, build)
    if say is not None:
        selection = getattr(trained[0], "selection", None)
        for line in ([selection] if selection else []) + baseline_lines(
                getattr(trained[0], "metrics", {}) or {}):
            say(line)
    if options.checkpoint_dir is not None:
        remove_checkpoints(options.checkpoint_dir)
    return path


def baseline_lines(metrics: Mapping[str, float]) -> list[str]:
    """The model's validation NLL beside the Gaussian's, and what to try when it loses."""
    model, gauss = metrics.get("val_nll"), metrics.get("val_gaussian_nll")
    if model is None or gauss is None:
        return []
    lines = [f"validation NLL {model:.4f} nats per row; a full-covariance Gaussian fitted to "
             f"the same training rows: {gauss:.4f}"]
    if not model < gauss:
        lines.append("the model does not beat the Gaussian on this data: try more data, more "
                     "steps (--steps), or a smaller network (-c hidden=16 -c couplings=4)")
    return lines


def data_paths(data: Any) -> list[Path]:
    """The local files or folders ``data`` names (none for tensors or ``hf-dataset:``)."""
    if isinstance(data, os.PathLike) or (isinstance(data, str)
                                         and not data.startswith("hf-dataset:")):
        return [Path(data).expanduser()]
    return []


def write_artifact(directory: Path, model: ZooModel, p: Plan, data: Any, *,
                   title: str) -> None:
    """The artifact of a run on the user's data, as a catalog build writes one: named
    ``title`` (the output folder's name), with ``samples.png`` (2-D points drawn over the
    training rows, on the same axes, named by the table's columns), ``training.png``,
    ``history.json`` and the distribution of its scores (``log_prob``)."""
    from zoo.artifact import extras
    from zoo.artifact import io as artifacts

    name = data if isinstance(data, str) else p.examples.name
    recipe = _config.to_dict(p.recipe)
    result = getattr(model, "fit_result", None)
    if result is not None:
        recipe["steps"] = result.steps
    files = extras.render(directory, model, title=title,
                          history=getattr(result, "history", None),
                          best_step=getattr(result, "best_step", None),
                          steps=recipe.get("steps"), data=training_points(p),
                          labels=p.columns)
    artifacts.write(
        directory, model, name=title,
        description=f"{p.family.name} trained on {Path(name).name if os.sep in name else name} "
                    f"({len(p.examples)} examples)",
        dataset=None, recipe=recipe, metrics=getattr(model, "metrics", {}),
        source={"kind": "data", "data": str(name), "examples": len(p.examples),
                **({"columns": p.columns} if p.columns is not None else {}),
                **p.context_source,
                "started_from": p.entry or p.family.name,
                "best_step": getattr(result, "best_step", None)},
        files=files, log_prob=getattr(model, "log_prob_distribution", None))


def training_points(p: Plan) -> Any:
    """Up to ``DATA_POINTS`` training rows of vector data (drawn with the recipe's seed),
    to show under the model's samples; None for images and sequences."""
    import torch

    if p.examples.kind != "continuous" or len(getattr(p.config, "shape", ())) != 1:
        return None
    n = len(p.examples)
    pick = torch.randperm(n, generator=torch.Generator().manual_seed(p.recipe.seed))
    return p.examples.take(pick[:DATA_POINTS].sort().values.numpy())


def data_train_command(family_or_entry: str, data: Any, output: Path, options: TrainOptions,
                       *, config: Mapping[str, Any] | None = None,
                       batch_size: int | None = None, lr: float | None = None,
                       columns: Any = None, **context: Any) -> list[str]:
    """The ``zoo train ... --data`` arguments that make the same run in a worker process."""
    import json

    if not isinstance(data, (str, os.PathLike)):
        raise ZooError("several processes need data they can each open: pass a path or "
                       "hf-dataset:ORG/NAME, not an object in memory")
    text = str(data)
    if not text.startswith("hf-dataset:"):
        text = str(Path(text).expanduser().resolve())
    args = ["train", family_or_entry, "--data", text, "--output", str(output.resolve())]
    for key, value in (config or {}).items():
        args += ["-c", f"{key}={json.dumps(value)}"]
    for flag, value in (("--batch-size", batch_size), ("--lr", lr)):
        if value is not None:
            args += [flag, str(value)]
    if columns is not None:  # a ColumnChoice: every worker chooses the same columns
        if columns.columns is not None:
            args += ["--columns", ",".join(columns.columns)]
        if columns.drop:
            args += ["--drop-columns", ",".join(columns.drop)]
        if columns.drop_missing:
            args += ["--drop-missing"]
    return args + context_flags(**context) + options.flags()


def context_flags(given: Sequence[str] = (), label_column: str | None = None,
                  context: Any = None, unconditional: bool = False) -> list[str]:
    """``zoo train``'s context options for the same run in a worker process."""
    if context is not None and not isinstance(context, (str, os.PathLike)):
        raise ZooError("several processes need labels they can each open: pass a .npy path")
    return ([*(["--given", ",".join(given)] if given else []),
             *(["--label-column", label_column] if label_column else []),
             *(["--labels", str(Path(context).resolve())] if context is not None else []),
             *(["--unconditional"] if unconditional else [])])


def say_to_stderr(line: str) -> None:
    with contextlib.suppress(OSError):
        print(f"zoo: {line}", file=sys.stderr)


