"""How a run trains, as one object from the command line to the trainer.

``zoo train`` (a recipe or the user's data), ``zoo.train``, ``zoo.fit`` and the workers that
``--nproc`` starts all pass the same options. Keeping them in one frozen dataclass means an
option is added in one place: its field, its command-line flag (``flags``) for the workers,
and whether the trainer is asked for it (``trainer_kwargs``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class TrainOptions:
    """Options of one training run (defaults: the recipe's steps and seed, the trainer's own
    choices for the rest)."""

    steps: int | None = None  #: overrides the recipe's step count
    seed: int | None = None  #: overrides the recipe's seed
    progress: bool | None = None  #: a progress bar (default: when stderr is a terminal)
    device: str | None = "auto"  #: ``auto`` (CUDA when present), ``cpu`` or ``cuda``
    bf16: bool = False  #: bfloat16 autocast for the forward pass
    compile: bool | None = None  #: ``torch.compile``; None: only runs long enough to repay it
    checkpoint_every: int | None = None  #: save the training state every N steps
    checkpoint_dir: Path | None = None  #: where checkpoints go
    resume: bool = False  #: continue from the newest checkpoint in ``checkpoint_dir``
    nproc: int = 1  #: local processes (DDP through torchrun's launcher)
    overwrite: bool = False  #: replace a zoo artifact already at the output (``--force``)

    @classmethod
    def of(cls, **values: Any) -> TrainOptions:
        """Options from keyword arguments, ``None`` meaning "the default" for every field."""
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise TypeError(f"unknown training options: {', '.join(unknown)}")
        return cls(**{k: v for k, v in values.items() if v is not None})

    def with_checkpoint_dir(self, default: Path) -> TrainOptions:
        """These options with ``default`` as the checkpoint folder, when checkpoints are
        asked for (``resume`` or ``checkpoint_every``) and no folder was given."""
        if self.checkpoint_dir is None and (self.resume or self.checkpoint_every):
            return dataclasses.replace(self, checkpoint_dir=Path(default))
        return self

    def trainer_kwargs(self) -> dict[str, Any]:
        """What the trainer (``Family.train`` / ``zoo.training.loop.maximise_likelihood``) is asked for: only
        options that differ from its defaults, so that a family with its own ``train()``
        need not know options it is not asked to use. ``compile=False`` is asked for (the
        trainer's default is to decide by the run's length)."""
        asked = {"device": self.device, "bf16": self.bf16, "compile": self.compile,
                 "resume": self.resume, "checkpoint_every": self.checkpoint_every,
                 "checkpoint_dir": self.checkpoint_dir}
        return {k: v for k, v in asked.items()
                if v is not None and (v is not False or k == "compile")}

    def flags(self) -> list[str]:
        """The ``zoo train`` flags that make the same run in a worker process (every option
        but ``nproc``, which the launcher decides)."""
        args: list[str] = []
        for flag, value in (("--steps", self.steps), ("--seed", self.seed),
                            ("--device", self.device),
                            ("--checkpoint-every", self.checkpoint_every)):
            if value is not None:
                args += [flag, str(value)]
        if self.checkpoint_dir is not None:
            args += ["--checkpoint-dir", str(Path(self.checkpoint_dir).expanduser().resolve())]
        args += [flag for flag, on in (("--bf16", self.bf16), ("--compile", self.compile is True),
                                       ("--no-compile", self.compile is False),
                                       ("--resume", self.resume),
                                       ("--quiet", self.progress is False),
                                       ("--force", self.overwrite)) if on]
        return args
