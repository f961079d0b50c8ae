"""The Python API: the facade that goes from a user's name to every step (pull, load, train,
evaluate, push, verify). Its room also holds the user's-own-data functions (``owndata``,
``scoring``) and the catalog's rankings (``rankings``). The command line calls into this room
for every action; it reads the catalog, the registry, the training options and the store's
paths itself only to format what it prints (``zoo plugins``, ``zoo info``, ``zoo verify``).

Names: a catalog name (``realnvp-moons``), ``hf-hub:ORG/REPO[@REV]`` for a Hub repository,
or a path to an artifact directory (anything with a path separator, or an existing folder).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zoo import faults
from zoo.artifact import store
from zoo.catalog import Entry, catalog
from zoo.errors import ArtifactError, NotFoundError, ZooError
from zoo.names import HUB_PREFIX, is_path
from zoo.plugin.registry import get_dataset, get_family
from zoo.training.options import TrainOptions

if TYPE_CHECKING:
    from zoo.artifact.hub import PushResult
    from zoo.artifact.verify import VerifyResult
    from zoo.infer.evaluation import Evaluation
    from zoo.plugin.model import ZooModel


DEFAULT_OPTIONS = TrainOptions()


def list_models(pattern: str | None = None, *, family: str | None = None,
                dataset: str | None = None, pulled: bool | None = None) -> list[str]:
    """The names of the catalog's entries, sorted, as timm's ``list_models`` filters them.

    ``pattern`` is a shell-style pattern over names (``"made-*"``); ``family`` and
    ``dataset`` keep the entries of that family or dataset; ``pulled`` True keeps the
    entries in the local store, False those that are not (None: both).
    """
    import fnmatch

    names = []
    for entry in catalog():
        if pattern is not None and not fnmatch.fnmatchcase(entry.name, pattern):
            continue
        if family is not None and entry.family != family:
            continue
        if dataset is not None and entry.dataset != dataset:
            continue
        if pulled is not None and is_complete(store.artifact_dir(entry.name)) != pulled:
            continue
        names.append(entry.name)
    return sorted(names)


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
        from zoo.artifact import hub

        return hub.pull(name, force=force, offline=offline, progress=progress)
    if is_path(name):
        return _artifact_folder(Path(name).expanduser())
    from zoo.artifact.health import usable

    entry = get_entry(name)
    final = store.artifact_dir(entry.name)
    store.check_home()
    # A stored artifact is never rebuilt unless asked (force): a damaged one is an error
    # that says so, a missing model card is rebuilt from config.json (under the lock).
    if not force and usable(final, entry.name):
        return final
    # Another process may have finished it while we waited for the lock, or a replacement
    # may have rolled back: then it is there.
    return publish_built(final, lambda tmp: fetch_or_build(entry, tmp, offline=offline,
                                                             progress=progress),
                         entry=entry, store_name=entry.name, need=expected_bytes(entry),
                         done=lambda: not force and usable(final, entry.name, repair=True))


def publish_built(final: Path, build: Callable[[Path], Any], *, entry: Entry | None = None,
                  store_name: str | None = None, need: int = 0,
                  done: Callable[[], bool] | None = None) -> Path:
    """Write an artifact at ``final`` the one safe way, for ``zoo pull``, ``zoo train NAME``
    and ``zoo train --data`` alike: ``build(folder)`` fills a staging folder beside
    ``final`` (removed on any error), the staged artifact must load (and be ``entry``'s
    model), and only then is it renamed into place. A store name's writer holds that name's
    lock and first removes what killed writers left; ``done()``, asked under the lock before
    and after that cleaning, returns True when the artifact is already there."""
    with store.locked(store_name) if store_name else contextlib.nullcontext():
        if store_name:
            if done is not None and done():
                return final
            store.clean_leftovers(final)
            if done is not None and done():  # a replacement killed mid-way rolled back
                return final
        with store.staging(final, need=need) as tmp:
            build(tmp)
            check_staged(tmp, entry)
            return store.publish(tmp, final)


def _artifact_folder(path: Path) -> Path:
    """``path`` if it holds an artifact's config and weights (a missing card only warns)."""
    if not store.holds_model(path):
        raise NotFoundError(f"no artifact at {path}: expected {', '.join(store.FILES)}")
    if not (path / store.CARD).is_file():
        import logging

        logging.getLogger(__name__).warning("%s has no model card (%s)", path, store.CARD)
    return path


def expected_bytes(entry: Entry) -> int:
    """About how much disk the artifact of ``entry`` needs (its weights), checked before
    any training or download starts; 0 when the family cannot tell without building."""
    from zoo.artifact.io import expected_tensors, nbytes

    family = get_family(entry.family)
    want = expected_tensors(family, family.parse_config(entry.config))
    if want is None:
        return 0
    return sum(nbytes(dtype, shape) for dtype, shape in want.values()) + (1 << 16)


def check_staged(directory: Path, entry: Entry | None = None) -> None:
    """Refuse to publish an artifact that does not load, or is not the model ``entry`` names:
    whatever a recipe or a download produced, nothing unverified gets a final name."""
    from zoo.artifact import io as artifacts

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
        from zoo.artifact import hub

        if hub.fetch_entry(entry, directory, offline=offline, progress=progress):
            return
    build_artifact(entry, directory, TrainOptions(progress=progress))


def build_artifact(entry: Entry, directory: Path | None,
                   options: TrainOptions = DEFAULT_OPTIONS, **extra: Any) -> ZooModel:
    """Train ``entry``'s model from its recipe, evaluate it on the test split, write it out.

    ``options`` say how (steps, seed, device, ...); ``extra`` keyword arguments go to the
    family's ``train`` as they are (``train_data``, ``callback``: in-process runs only). In
    a run of several processes only rank 0 evaluates and writes; the others (and
    ``directory=None``) train and return the model.
    """
    import torch

    from zoo.artifact import extras
    from zoo.artifact import io as artifacts
    from zoo.config import to_dict
    from zoo.training import distributed
    from zoo.training.loop import train_model

    started = time.monotonic()  # the card says how long this build took, and where
    steps = options.steps
    recipe = (entry.recipe if options.seed is None
              else dataclasses.replace(entry.recipe, seed=options.seed))
    family = get_family(entry.family)
    dataset = get_dataset(entry.dataset)
    torch.manual_seed(recipe.seed)
    model = family.build(entry.config)
    faults.point("train-start")
    result = train_model(family, model, dataset, recipe, steps=steps, progress=options.progress,
                         **options.trainer_kwargs(), **extra)
    if directory is None or not distributed.is_main_process():
        return model
    test, log_prob = evaluate_and_record(model, dataset, recipe)
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
                            **built_where(entry, time.monotonic() - started)}, files=files,
                    log_prob=log_prob)
    return model


def evaluate_and_record(model: ZooModel, dataset: Any, recipe: Any) -> tuple[Evaluation, dict]:
    """The test evaluation of a freshly built model, and the distribution of its scores on
    training and test examples that the artifact records (``zoo.artifact.scores``)."""
    import math

    from zoo.artifact.scores import record, scored_sample
    from zoo.infer.evaluation import nll_per_example, summarize

    examples = dataset.examples("test")
    nll = nll_per_example(model, examples, recipe.eval_batch_size)
    test = summarize(nll, math.prod(examples.shape),
                     bound=bool(getattr(model, "likelihood_bound", False)))
    train = scored_sample(model, dataset.examples("train"), seed=recipe.seed,
                          batch_size=recipe.eval_batch_size)
    return test, record({"train": train, "test": -nll})


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
    from zoo.artifact import io as artifacts

    return artifacts.load(pull(os.fspath(name_or_path), offline=offline), device=device)


def save(model: ZooModel, path: str | os.PathLike, *, overwrite: bool = False,
         **meta: Any) -> Path:
    """Save a model as an artifact directory at ``path`` and return it.

    The directory holds ``config.json`` (family, config, the sha256 of the weights, and
    ``meta``: ``name``, ``description``, ``dataset``, ``recipe``, ``metrics``, ``source``),
    ``model.safetensors`` (the whole ``state_dict``) and ``README.md`` (the model card). It is
    written to a staging folder and renamed into place, so ``path`` is complete or absent.
    ``zoo.load(path)`` loads it; ``zoo push`` publishes it. (This is the public form of
    ``zoo.artifact.io.save``, which the conformance kit uses.)

    ``path`` may be new or an empty folder; an existing zoo artifact there is replaced only
    with ``overwrite=True``, and anything else (a file, a folder of other files, the store)
    is refused with nothing changed.
    """
    from zoo.artifact import io as artifacts
    from zoo.artifact.destination import check_destination

    return artifacts.save(model, check_destination(path, overwrite=overwrite), **meta)


def train(name: str, *, output: str | os.PathLike | None = None, steps: int | None = None,
          seed: int | None = None, progress: bool | None = None, nproc: int = 1,
          device: str | None = "auto", bf16: bool = False, compile: bool | None = None,
          resume: bool = False, checkpoint_every: int | None = None,
          checkpoint_dir: str | os.PathLike | None = None, overwrite: bool = False,
          **extra: Any) -> Path:
    """Train the catalog entry ``name`` from its recipe and save the artifact at ``output``.

    ``output`` defaults to the store (replacing the stored artifact of ``name``). An explicit
    ``output`` may be new or an empty folder; a zoo artifact there is replaced only with
    ``overwrite=True``, and anything else is refused before training
    (``zoo.artifact.destination``). ``nproc`` > 1 starts that many local processes through
    torchrun's launcher (DDP; the global batch stays the recipe's). ``device`` is ``auto``
    (CUDA when present), ``cpu`` or ``cuda``; ``bf16`` turns on bfloat16 autocast;
    ``compile`` ``True``/``False`` forces ``torch.compile`` on or off (default ``None``: only
    runs long enough to repay it). ``checkpoint_every`` N steps the training state is saved
    to ``checkpoint_dir`` (default: ``$ZOO_HOME/runs/NAME``, or ``OUTPUT.checkpoints``
    beside an explicit output); ``resume`` continues from the newest checkpoint there. A
    finished run removes its checkpoints.
    """
    options = TrainOptions.of(steps=steps, seed=seed, progress=progress, nproc=nproc,
                              device=device, bf16=bf16, compile=compile, resume=resume,
                              checkpoint_every=checkpoint_every,
                              checkpoint_dir=None if checkpoint_dir is None
                              else Path(checkpoint_dir), overwrite=overwrite)
    return train_entry(name, options, output=output, **extra)


def train_entry(name: str, options: TrainOptions, *, output: str | os.PathLike | None = None,
                **extra: Any) -> Path:
    """``zoo train NAME``: :func:`train` with its options as one object (the command line's way)."""
    from zoo.artifact.destination import check_destination
    from zoo.training import distributed
    from zoo.training.checkpoint import default_directory
    from zoo.training.checkpoint import remove_all as remove_checkpoints

    entry = get_entry(name)
    final = Path(output).expanduser() if output is not None else store.artifact_dir(entry.name)
    in_store = final.resolve() == store.artifact_dir(entry.name).resolve()
    if not in_store:
        check_destination(final, overwrite=options.overwrite)
    options = options.with_checkpoint_dir(default_directory(entry.name, output))
    if options.nproc > 1:
        if extra:
            raise ZooError(f"options {', '.join(sorted(extra))} cannot be passed to "
                           "worker processes; use nproc=1 or torchrun")
        distributed.check_batch(entry.recipe.batch_size, options.nproc)
        where = ["--output", str(final.resolve())] if output is not None else []
        distributed.launch_local(options.nproc, ["train", name, *where, *options.flags()])
        return final
    if not distributed.is_main_process():
        build_artifact(entry, None, options, **extra)
        return final
    # Writing into the store takes the name's lock, as a pull does: a pull waiting for it
    # then returns this artifact, and none removes this staging folder as a leftover.
    path = publish_built(final, lambda tmp: build_artifact(entry, tmp, options, **extra),
                         entry=entry, store_name=entry.name if in_store else None,
                         need=expected_bytes(entry))
    if options.checkpoint_dir is not None:
        remove_checkpoints(options.checkpoint_dir)
    return path


def evaluate(name_or_model: Any, *, split: str = "test", dataset: str | None = None,
             batch_size: int = 4096, samples: int = 1) -> Evaluation:
    """Test NLL in nats per example (with standard error) and bits/dim of a model.

    For a continuous model of discrete data the NLL is an upper bound (``bound`` is true);
    ``samples`` > 1 dequantization draws per example give the tighter importance-weighted
    bound."""
    from zoo.infer.evaluation import evaluate_on as score
    from zoo.plugin.model import ZooModel

    model = name_or_model if isinstance(name_or_model, ZooModel) else load(name_or_model)
    artifact = getattr(model, "artifact", None)
    dataset = dataset or (artifact.dataset if artifact is not None else None)
    if dataset is None:
        raise ZooError("this model does not record a catalog dataset (it was trained on your "
                       "own data?): score data with `zoo eval NAME --data SOURCE`, or name a "
                       "registered dataset with `zoo eval NAME --dataset NAME` "
                       "(dataset=NAME in Python)")
    return score(model, get_dataset(dataset).examples(split), batch_size, samples=samples)


def leaderboard(dataset: str | None = None) -> list[Any]:
    """Every catalog entry (on ``dataset``, if given) ranked by test NLL in nats, with bits/dim:
    measured for pulled artifacts, expected from the catalog otherwise, bounds marked."""
    from zoo.api.rankings import rows

    return rows(dataset)


@dataclasses.dataclass(frozen=True)
class ModelInfo:
    """What is known about a model name: its catalog entry (None for a path or an
    ``hf-hub:`` name) and, when pulled, its stored artifact. ``as_dict()`` is the JSON that
    ``zoo info --json`` prints; ``info["key"]`` reads that form too, as it did when ``info``
    returned a dict."""

    name: str
    pulled: bool
    entry: dict[str, Any] | None = None  #: the catalog entry's fields
    provider: str | None = None  #: where the entry comes from (registry.yaml, a plugin)
    path: str | None = None  #: the artifact folder, when pulled and readable
    artifact: dict[str, Any] | None = None  #: its config.json, when readable
    artifact_error: str | None = None  #: why its config.json could not be read
    source: dict[str, Any] | None = None  #: where it came from: the Hub, or the recipe

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, **(self.entry or {})}
        if self.provider is not None:
            out["provider"] = self.provider
        out["pulled"] = self.pulled
        for key in ("artifact_error", "path", "artifact", "source"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    def __getitem__(self, key: str) -> Any:
        return self.as_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)


def info(name: str) -> ModelInfo:
    """What is known about ``name``: its catalog entry and, if pulled, its stored artifact."""
    from zoo.artifact import io as artifacts

    entry: Entry | None = None
    path: Path | None = None
    if name.startswith(HUB_PREFIX):
        from zoo.artifact import hub

        path = hub.cached_path(name)
    elif is_path(name):
        path = Path(name).expanduser()
    else:
        entry = get_entry(name)
        path = store.artifact_dir(name)
    pulled = path is not None and store.holds_model(path)
    if not pulled and path is not None and is_path(name):
        raise NotFoundError(f"no artifact at {path}")
    found = ModelInfo(name=name, pulled=pulled,
                      entry=entry.as_dict() if entry is not None else None,
                      provider=entry.provider if entry is not None else None)
    if not pulled:
        return found
    try:
        cfg = artifacts.read_config(path)
    except ArtifactError as exc:
        return dataclasses.replace(found, artifact_error=str(exc))
    # Where it came from: the Hub (source.json, or an hf-hub: snapshot's commit) or the
    # recipe that built it (recorded inside config.json).
    from zoo.artifact import hub

    return dataclasses.replace(found, path=str(path), artifact=dataclasses.asdict(cfg),
                               source=hub.source_of(name, path) or dict(cfg.source))


def load_pretrained(cls: type, name_or_path: str | os.PathLike, *, revision: str | None = None,
                    device: Any = "cpu", offline: bool = False) -> ZooModel:
    """``ZooModel.from_pretrained``: the Hub's way of naming a model, mapped onto zoo's
    names (an existing folder, ``hf-hub:ORG/REPO[@REV]``, ``ORG/REPO``, a catalog name),
    and the model checked to be an instance of ``cls``."""
    from zoo.names import REPO_ID

    name = os.fspath(name_or_path)
    folder = Path(name).expanduser()
    if not name.startswith(HUB_PREFIX) and folder.is_dir():
        if revision is not None:
            raise ZooError(f"{name} is a folder: a revision applies to a Hub repository")
        target = str(folder)
    elif name.startswith(HUB_PREFIX) or REPO_ID.fullmatch(name):
        target = name if name.startswith(HUB_PREFIX) else f"{HUB_PREFIX}{name}"
        if revision is not None:
            if "@" in target:
                raise ZooError(f"{name} already names a revision; drop revision={revision!r}")
            target = f"{target}@{revision}"
    elif is_path(name):
        raise NotFoundError(f"no artifact at {folder}: no such folder")
    else:
        if revision is not None:
            raise ZooError(f"{name} is a catalog name: a revision applies to a Hub repository "
                           "(ORG/REPO)")
        target = name
    model = load(target, device=device, offline=offline)
    if not isinstance(model, cls):
        raise ZooError(f"{name} holds a {model.family!r} model ({type(model).__name__}), "
                       f"not a {cls.__name__}; load it with zoo.load or "
                       f"{type(model).__name__}.from_pretrained")
    return model


def push_model(model: ZooModel, repo: str, *, revision: str | None = None,
               private: bool = False, message: str | None = None,
               token: str | None = None) -> PushResult:
    """``ZooModel.push_to_hub``: the model written as an artifact in a temporary folder,
    then published as ``zoo push`` publishes a folder."""
    import tempfile

    from zoo.artifact import hub, io

    with tempfile.TemporaryDirectory(prefix="zoo-push-") as tmp:
        cfg = getattr(model, "artifact", None)
        meta = ({"name": cfg.name, "description": cfg.description, "dataset": cfg.dataset,
                 "recipe": cfg.recipe, "metrics": cfg.metrics, "source": cfg.source,
                 "log_prob": cfg.log_prob}
                if cfg is not None else {})
        folder = io.save(model, Path(tmp) / "artifact", **meta)
        return hub.push(folder, repo=repo, revision=revision, private=private,
                        message=message, token=token)


def push(name_or_path: str | os.PathLike, *, repo: str, revision: str | None = None,
         private: bool = False, message: str | None = None, token: str | None = None) -> PushResult:
    """Publish an artifact (a catalog name, pulled or built first, a path, or an ``hf-hub:``
    name) to the Hub repository ``repo``, creating it if needed, on branch ``revision``.

    The model card is completed from the config and metrics before upload. The token is
    ``token``, else the one huggingface_hub finds (``HF_TOKEN`` or ``hf auth login``).
    """
    from zoo.artifact import hub

    return hub.push(pull(os.fspath(name_or_path)), repo=repo, revision=revision,
                    private=private, message=message, token=token)


def verify(names: list[str] | None = None) -> list[VerifyResult]:
    """Check artifacts completely (files, config, sha256 of the weights, strict load): those
    called ``names`` (catalog names, ``hf-hub:`` names, paths), or every one in the store.
    Each result says ``ok`` or lists its problems with the path; ``zoo pull --force NAME``
    replaces a bad catalog artifact."""
    from zoo.artifact.verify import verify as check_all

    return check_all(names)
