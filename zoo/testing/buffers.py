"""The ``derived_buffers`` check: every buffer a family does not declare as learned state
follows from the config alone, because loading rebuilds it and refuses a file that differs."""

from __future__ import annotations

import fnmatch

import torch

from zoo.artifact.io import state_buffers
from zoo.testing.harness import Subject, _describe, fail


def check_derived_buffers(s: Subject) -> str | None:
    """Buffers not in Family.state_buffers are the same in two builds of the config."""
    patterns = state_buffers(s.family)
    models = []
    for seed in (s.seed, s.seed + 7919):  # the global random state differs between the two
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            try:
                models.append(s.family.build(s.raw))
            except Exception as exc:
                fail(f"building the model failed: {_describe(exc)}")
    first, second = (m.state_dict() for m in models)
    params = {name for name, _ in models[0].named_parameters()}
    buffers = [name for name in first if name not in params]
    for pattern in patterns:
        if not any(fnmatch.fnmatchcase(name, pattern) for name in buffers):
            fail(f"state_buffers names {pattern!r}, which matches no buffer of the model "
                 f"(its buffers: {', '.join(buffers) or 'none'})")
    state = [n for n in buffers if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    derived = [n for n in buffers if n not in state]
    for name in derived:
        a, b = first[name], second[name]
        same = a.shape == b.shape and a.dtype == b.dtype and bool(
            ((a == b) | (torch.isnan(a) & torch.isnan(b)) if a.is_floating_point()
             else (a == b)).all())
        if not same:
            fail(f"buffer {name!r} differs between two builds of the same config (with the "
                 "global random generator in another state): loading rebuilds every buffer "
                 "from the config and refuses an artifact whose copy differs, so derive it "
                 "from the config (torch.Generator().manual_seed(config.seed)), or, if it is "
                 "learned state, list it in the family's state_buffers")
    return f"{len(derived)} derived buffer(s) rebuilt identically, {len(state)} declared state"
