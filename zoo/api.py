"""The Python API. The command line calls these functions and nothing else.

Names: a catalog name (``realnvp-moons``), ``hf-hub:ORG/REPO[@REV]`` for a Hub repository,
or a path to an artifact directory (anything with a path separator, or an existing folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import faults, store
from zoo.catalog import Entry, catalog
from zoo.errors import ArtifactError, NotFoundError, ZooError
from zoo.names import HUB_PREFIX, is_path
from zoo.registry import get_dataset, get_family

if TYPE_CHECKING:
    from zoo.evaluation import Evaluation
    from zoo.hub import PushResult
    from zoo.integrity import VerifyResult
    from zoo.model import ZooModel


def list_models() -> list[str]:
    """The names of every catalog entry, sorted."""
    return catalog().names()


def get_entry(name: str) -> Entry:
    """The catalog entry called ``name``."""
    return catalog().get(name)


is_complete = store.is_complete


def pull(name: str, *, force: bool = False, offline: bool = False,
         progress: bool | None = None) -> Path:
    """Make the artifact of ``name`` available locally and return its directory.

    A catalog entry is downloaded from its published Hub source when it has one, and built
    from its recipe otherwise (or when the Hub cannot be reached). Once stored, a second
    pull returns at once; ``force`` builds or downloads it again.
    """
    if name.startswith(HUB_PREFIX):
        from zoo import hub

        return hub.pull(name, force=force, offline=offline, progress=progress)
    if is_path(name):
        return _artifact_folder(Path(name).expanduser())
    from zoo.stored import usable

    entry = get_entry(name)
    final = store.artifact_dir(entry.name)
    store.check_home()
    # A stored artifact is never rebuilt unless asked (force): a damaged one is an error
    # that says so, a missing model card is rebuilt from config.json (under the lock).
    if not force and usable(final, entry.name):
        return final
    with store.locked(entry.name):
        # Another process may have finished it while we waited for the lock.
        if not force and usable(final, entry.name, repair=True):
            return final
        store.clean_leftovers(final)
        if not force and usable(final, entry.name, repair=True):  # a replacement rolled back
            return final
        with store.staging(final, need=expected_bytes(entry)) as tmp:
            fetch_or_build(entry, tmp, offline=offline, progress=progress)
            check_staged(tmp, entry)
            return store.publish(tmp, final)


def _artifact_folder(path: Path) -> Path:
    """``path`` if it holds an artifact's config and weights (a missing card only warns)."""
    if not all((path / f).is_file() for f in (store.CONFIG, store.WEIGHTS)):
        raise NotFoundError(f"no artifact at {path}: expected {', '.join(store.FILES)}")
    if not (path / store.CARD).is_file():
        import logging

        logging.getLogger(__name__).warning("%s has no model card (%s)", path, store.CARD)
    return path


def expected_bytes(entry: Entry) -> int:
    """About how much disk the artifact of ``entry`` needs (its weights), checked before
    any training or download starts; 0 when the family cannot tell without building."""
    from zoo.artifacts import expected_tensors, nbytes

    family = get_family(entry.family)
    want = expected_tensors(family, family.parse_config(entry.config))
    if want is None:
        return 0
    return sum(nbytes(dtype, shape) for dtype, shape in want.values()) + (1 << 16)


def check_staged(directory: Path, entry: Entry | None = None) -> None:
    """Refuse to publish an artifact that does not load, or is not the model ``entry`` names:
    whatever a recipe or a download produced, nothing unverified gets a final name."""
    from zoo import artifacts

    cfg = artifacts.read_config(directory)
    if entry is not None:
        family = get_family(entry.family)
        if cfg.family != entry.family or (family.parse_stored_config(cfg.config)
                                          != family.parse_config(entry.config)):
            raise ArtifactError(
                f"{entry.name}: the artifact obtained is a {cfg.family!r} model with config "
                f"{cfg.config}, but the catalog entry is a {entry.family!r} model with config "
                f"{entry.config}; nothing was stored")
    artifacts.load(directory)


def fetch_or_build(entry: Entry, directory: Path, *, offline: bool = False,
                   progress: bool | None = None) -> None:
    """Fill ``directory`` with ``entry``'s artifact: its Hub source if it can, else its recipe."""
    if entry.sources:
        from zoo import hub

        if hub.fetch_entry(entry, directory, offline=offline, progress=progress):
            return
    build_artifact(entry, directory, progress=progress)


def build_artifact(entry: Entry, directory: Path | None, *, steps: int | None = None,
                   seed: int | None = None, progress: bool | None = None,
                   **train_options: Any) -> ZooModel:
    """Train ``entry``'s model from its recipe, evaluate it on the test split, write it out.

    ``train_options`` go to the family's ``train`` (the generic trainer takes ``device``,
    ``bf16``, ``compile``, ``checkpoint_dir``, ``checkpoint_every``, ``resume``). In a run of
    several processes only rank 0 evaluates and writes; the others (and ``directory=None``)
    train and return the model.
    """
    import torch

    from zoo import artifacts, distributed, extras
    from zoo.config import to_dict
    from zoo.evaluation import evaluate as score

    started = time.monotonic()  # the card says how long this build took, and where
    recipe = entry.recipe if seed is None else dataclasses.replace(entry.recipe, seed=seed)
    family = get_family(entry.family)
    dataset = get_dataset(entry.dataset)
    torch.manual_seed(recipe.seed)
    model = family.build(entry.config)
    faults.point("train-start")
    result = family.train(model, dataset, recipe, steps=steps, progress=progress, **train_options)
    if directory is None or not distributed.is_main_process():
        return model
    test = score(model, dataset.examples("test"), recipe.eval_batch_size)
    metrics = {"test_nll": test.nll, "test_nll_stderr": test.stderr,
               "bits_per_dim": test.bits_per_dim, "test_n": float(test.n)}
    if result.val_nll is not None:
        metrics["val_nll"] = result.val_nll
    recipe_dict = to_dict(recipe)
    if steps is not None:
        recipe_dict["steps"] = steps
    # Pictures and history (a family's own train() may return no history: then samples only).
    files = extras.render(directory, model, title=entry.name,
                          history=getattr(result, "history", None),
                          best_step=getattr(result, "best_step", None),
                          steps=recipe_dict.get("steps"), test_nll=test.nll)
    artifacts.write(directory, model, name=entry.name, description=entry.description,
                    dataset=entry.dataset, recipe=recipe_dict, metrics=metrics,
                    source={"kind": "recipe", "best_step": result.best_step,
                            **built_where(entry, time.monotonic() - started)}, files=files)
    return model


def built_where(entry: Entry, seconds: float) -> dict[str, Any]:
    """What the model card says about the build's time: this build's seconds and machine,
    and the time the catalog records for the entry (to compare with)."""
    import torch

    machine = (f"GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available()
               else f"CPU, {os.cpu_count()} cores, torch threads: {torch.get_num_threads()}")
    where = {"build_seconds": round(seconds, 1), "built_on": machine}
    if entry.build_time is not None and entry.build_time.summary():
        where["catalog_build_time"] = entry.build_time.summary()
    return where


def load(name_or_path: str | os.PathLike, *, device: Any = "cpu",
         offline: bool = False) -> ZooModel:
    """The model called ``name_or_path``, pulled first if needed, ready for ``sample``/``log_prob``.

    ``name_or_path`` is a catalog name, ``hf-hub:ORG/REPO[@REV]``, or the path of an
    artifact directory (what ``zoo.save`` writes): that is loaded strictly, without any
    download or build. Loading checks the weights' sha256 against ``config.json`` and every
    tensor's name, shape and dtype before anything is allocated. ``device`` is where the
    model goes; ``offline`` never touches the network.
    """
    from zoo import artifacts

    return artifacts.load(pull(os.fspath(name_or_path), offline=offline), device=device)


def save(model: ZooModel, path: str | os.PathLike, *, overwrite: bool = False,
         **meta: Any) -> Path:
    """Save a model as an artifact directory at ``path`` and return it.

    The directory holds ``config.json`` (family, config, the sha256 of the weights, and
    ``meta``: ``name``, ``description``, ``dataset``, ``recipe``, ``metrics``, ``source``),
    ``model.safetensors`` (the whole ``state_dict``) and ``README.md`` (the model card). It is
    written to a staging folder and renamed into place, so ``path`` is complete or absent.
    ``zoo.load(path)`` loads it; ``zoo push`` publishes it. (This is the public form of
    ``zoo.artifacts.save``, which the conformance kit uses.)

    ``path`` may be new or an empty folder; an existing zoo artifact there is replaced only
    with ``overwrite=True``, and anything else (a file, a folder of other files, the store)
    is refused with nothing changed.
    """
    from zoo import artifacts
    from zoo.destination import check_destination

    return artifacts.save(model, check_destination(path, overwrite=overwrite), **meta)


def train(name: str, *, output: str | os.PathLike | None = None, steps: int | None = None,
          seed: int | None = None, progress: bool | None = None, nproc: int = 1,
          device: str | None = "auto", bf16: bool = False, compile: bool | None = None,
          resume: bool = False, checkpoint_every: int | None = None,
          checkpoint_dir: str | os.PathLike | None = None, overwrite: bool = False,
          **train_options: Any) -> Path:
    """Train the catalog entry ``name`` from its recipe and save the artifact at ``output``.

    ``output`` defaults to the store (replacing the stored artifact of ``name``). An explicit
    ``output`` may be new or an empty folder; a zoo artifact there is replaced only with
    ``overwrite=True``, and anything else is refused before training (``zoo.destination``).
    ``nproc`` > 1 starts that many local processes through torchrun's launcher (DDP; the
    global batch stays the recipe's). ``device`` is ``auto`` (CUDA when present), ``cpu`` or
    ``cuda``; ``bf16`` turns on bfloat16 autocast; ``compile`` ``True``/``False`` forces
    ``torch.compile`` on or off (default ``None``: only runs long enough to repay it).
    ``checkpoint_every`` N steps the training state is saved to ``checkpoint_dir`` (default:
    ``$ZOO_HOME/runs/NAME``, or ``OUTPUT.checkpoints`` beside an explicit output); ``resume``
    continues from the newest checkpoint there. A finished run removes its checkpoints.
    """
    from zoo import distributed
    from zoo.checkpoint import default_directory
    from zoo.checkpoint import remove_all as remove_checkpoints
    from zoo.destination import check_destination

    entry = get_entry(name)
    final = Path(output).expanduser() if output is not None else store.artifact_dir(entry.name)
    in_store = final.resolve() == store.artifact_dir(entry.name).resolve()
    if not in_store:
        check_destination(final, overwrite=overwrite)
    if checkpoint_dir is None and (resume or checkpoint_every):
        checkpoint_dir = default_directory(entry.name, output)
    options = {"device": device, "bf16": bf16, "compile": compile, "resume": resume,
               "checkpoint_every": checkpoint_every, "checkpoint_dir": checkpoint_dir}
    options = asked_options(options)
    if nproc > 1:
        if distributed.context().is_distributed:
            raise ZooError("this process already belongs to a process group started by torchrun; "
                           "drop nproc (torchrun's --nproc-per-node decides the process count)")
        if train_options:
            raise ZooError(f"options {', '.join(sorted(train_options))} cannot be passed to "
                           "worker processes; use nproc=1 or torchrun")
        distributed.check_batch(entry.recipe.batch_size, nproc)
        distributed.launch(nproc, ["-m", "zoo", *train_command(
            name, output=final if output is not None else None, steps=steps, seed=seed,
            progress=progress, overwrite=overwrite, **options)])
        return final
    if not distributed.is_main_process():
        build_artifact(entry, None, steps=steps, seed=seed, progress=progress,
                       **options, **train_options)
        return final
    # Writing into the store takes the name's lock, as a pull does: a pull waiting for it
    # then returns this artifact, and none removes this staging folder as a leftover.
    with store.locked(entry.name) if in_store else contextlib.nullcontext():
        if in_store:
            store.clean_leftovers(final)
        with store.staging(final, need=expected_bytes(entry)) as tmp:
            build_artifact(entry, tmp, steps=steps, seed=seed, progress=progress,
                           **options, **train_options)
            check_staged(tmp, entry)
            path = store.publish(tmp, final)
    if checkpoint_dir is not None:
        remove_checkpoints(checkpoint_dir)
    return path


def asked_options(options: dict[str, Any]) -> dict[str, Any]:
    """Only the training options that differ from the trainer's defaults: a family with its
    own ``train()`` need not know options it is not asked to use. ``compile=False`` is asked
    for (the default is to decide by the run's length); other ``False`` flags are defaults."""
    return {k: v for k, v in options.items()
            if v is not None and (v is not False or k == "compile")}


def train_command(name: str, *, output: str | os.PathLike | None = None,
                  steps: int | None = None, seed: int | None = None,
                  progress: bool | None = None, device: str | None = None, bf16: bool = False,
                  compile: bool | None = None, resume: bool = False,
                  checkpoint_every: int | None = None,
                  checkpoint_dir: str | os.PathLike | None = None,
                  overwrite: bool = False) -> list[str]:
    """The ``zoo train`` arguments that make the same run (what ``nproc`` workers execute)."""
    args = ["train", name]
    if output is not None:
        args += ["--output", str(Path(output).expanduser().resolve())]
    if steps is not None:
        args += ["--steps", str(steps)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if device is not None:
        args += ["--device", str(device)]
    if checkpoint_every is not None:
        args += ["--checkpoint-every", str(checkpoint_every)]
    if checkpoint_dir is not None:
        args += ["--checkpoint-dir", str(Path(checkpoint_dir).expanduser().resolve())]
    args += [flag for flag, on in (("--bf16", bf16), ("--compile", compile is True),
                                   ("--no-compile", compile is False), ("--resume", resume),
                                   ("--quiet", progress is False),
                                   ("--force", overwrite)) if on]
    return args


def evaluate(name_or_model: Any, *, split: str = "test", dataset: str | None = None,
             batch_size: int = 4096, samples: int = 1) -> Evaluation:
    """Test NLL in nats per example (with standard error) and bits/dim of a model.

    For a continuous model of discrete data the NLL is an upper bound (``bound`` is true);
    ``samples`` > 1 dequantization draws per example give the tighter importance-weighted
    bound."""
    from zoo.evaluation import evaluate as score
    from zoo.model import ZooModel

    model = name_or_model if isinstance(name_or_model, ZooModel) else load(name_or_model)
    artifact = getattr(model, "artifact", None)
    dataset = dataset or (artifact.dataset if artifact is not None else None)
    if dataset is None:
        raise ZooError("this model does not record a catalog dataset (it was trained on your "
                       "own data?): score data with `zoo eval NAME --data SOURCE`, or pass "
                       "dataset=NAME")
    return score(model, get_dataset(dataset).examples(split), batch_size, samples=samples)


def leaderboard(dataset: str | None = None) -> list[Any]:
    """Every catalog entry (on ``dataset``, if given) ranked by test NLL in nats, with bits/dim:
    measured for pulled artifacts, expected from the catalog otherwise, bounds marked."""
    from zoo.leaderboard import rows

    return rows(dataset)


def info(name: str) -> dict[str, Any]:
    """What is known about ``name``: its catalog entry and, if pulled, its stored artifact."""
    from zoo import artifacts

    result: dict[str, Any] = {"name": name}
    path: Path | None = None
    if name.startswith(HUB_PREFIX):
        from zoo import hub

        path = hub.cached_path(name)
    elif is_path(name):
        path = Path(name).expanduser()
    else:
        entry = get_entry(name)
        result.update(entry.as_dict())
        result["provider"] = entry.provider
        path = store.artifact_dir(name)
    result["pulled"] = path is not None and is_complete(path)
    if result["pulled"]:
        try:
            cfg = artifacts.read_config(path)
        except ArtifactError as exc:
            result["artifact_error"] = str(exc)
        else:
            result["path"] = str(path)
            result["artifact"] = dataclasses.asdict(cfg)
            # Where it came from: the Hub (source.json, or an hf-hub: snapshot's commit) or
            # the recipe that built it (recorded inside config.json).
            from zoo import hub

            result["source"] = hub.source_of(name, path) or dict(cfg.source)
    elif path is not None and is_path(name):
        raise NotFoundError(f"no artifact at {path}")
    return result


def push(name_or_path: str | os.PathLike, *, repo: str, revision: str | None = None,
         private: bool = False, message: str | None = None, token: str | None = None) -> PushResult:
    """Publish an artifact (a catalog name, pulled or built first, a path, or an ``hf-hub:``
    name) to the Hub repository ``repo``, creating it if needed, on branch ``revision``.

    The model card is completed from the config and metrics before upload. The token is
    ``token``, else the one huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``).
    """
    from zoo import hub

    return hub.push(pull(os.fspath(name_or_path)), repo=repo, revision=revision,
                    private=private, message=message, token=token)


def verify(names: list[str] | None = None) -> list[VerifyResult]:
    """Check artifacts completely (files, config, sha256 of the weights, strict load): those
    called ``names`` (catalog names, ``hf-hub:`` names, paths), or every one in the store.
    Each result says ``ok`` or lists its problems with the path; ``zoo pull --force NAME``
    replaces a bad catalog artifact."""
    from zoo.integrity import verify as check_all

    return check_all(names)
