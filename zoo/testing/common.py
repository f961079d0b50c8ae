"""Checks every family must pass: the contract, configs, build, log_prob, sampling, bad
input, and save -> load."""

from __future__ import annotations

import copy
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any

import torch

from zoo.plugin.family import Family
from zoo.plugin.model import ZooModel
from zoo.testing.harness import (
    Subject,
    _check_log_prob_tensor,
    _check_samples,
    _describe,
    _expect_value_error,
    _parse_or_fail,
    _registered,
    _show,
    fail,
)


def check_contract(s: Subject) -> None:
    """The family declares a name, a data kind and a frozen dataclass Config with shape."""
    f = s.family
    if not isinstance(f, Family):
        fail(f"{f!r} is not an instance of zoo.Family")
    name = getattr(f, "name", None)
    if not isinstance(name, str) or not name or name != name.strip() or "/" in name:
        fail(f"family.name must be a non-empty string without '/', got {name!r}")
    kind = getattr(f, "data_kind", None)
    if kind not in ("continuous", "discrete"):
        fail(f"family.data_kind must be 'continuous' or 'discrete', got {kind!r}")
    cfg = getattr(f, "Config", None)
    if not (isinstance(cfg, type) and dataclasses.is_dataclass(cfg)):
        fail(f"family.Config must be a dataclass, got {cfg!r}")
    if not cfg.__dataclass_params__.frozen:
        fail(f"{cfg.__name__} must be frozen (@dataclass(frozen=True)): configs are values")
    fields = {fl.name for fl in dataclasses.fields(cfg)}
    needed = ["shape"] + (["levels"] if kind == "discrete" else [])
    missing = [n for n in needed if n not in fields]
    if missing:
        fail(f"{cfg.__name__} lacks the field(s) {', '.join(missing)} every {kind} config has")
    if type(f).create is Family.create:
        fail(f"{type(f).__name__} does not implement create(config)")

def check_config_roundtrip(s: Subject) -> None:
    """The config parses, survives JSON and parses back to an equal config."""
    cfg = _parse_or_fail(s)
    try:
        text = json.dumps(s.family.config_dict(cfg))
    except (TypeError, ValueError) as exc:
        fail(f"config_dict(config) is not JSON-serialisable: {exc}")
    again = s.family.parse_config(json.loads(text))
    if again != cfg:
        fail(f"config changes through JSON: {cfg!r} became {again!r}")

def check_config_validation(s: Subject) -> None:
    """Unknown keys, missing shape, wrong types and absurd sizes are rejected before allocation."""
    cfg = _parse_or_fail(s)
    base = s.family.config_dict(cfg)
    huge_shape = [1, 1 << 20, 1 << 20] if s.discrete else [1 << 40]
    cases: list[tuple[str, Any]] = [
        ("an unknown key 'zoo_testing_unknown_key'", {**base, "zoo_testing_unknown_key": 1}),
        ("a config without 'shape'", {k: v for k, v in base.items() if k != "shape"}),
        ("shape given as a string", {**base, "shape": "large"}),
        (f"an absurd shape {huge_shape}", {**base, "shape": huge_shape}),
        ("a shape with a zero size", {**base, "shape": [0] * len(base["shape"])}),
        ("a list instead of a mapping", [base]),
    ]
    if s.discrete:
        cases += [("levels 0", {**base, "levels": 0}), ("levels 2**40", {**base, "levels": 1 << 40})]
    problems = []
    for what, raw in cases:
        try:
            s.family.parse_config(raw)
        except ValueError as exc:
            if what.startswith("an unknown key") and "zoo_testing_unknown_key" not in str(exc):
                problems.append(f"{what} was rejected, but the message does not name the key: "
                                f"{exc}")
        except Exception as exc:
            problems.append(f"{what} raised {_describe(exc)} instead of ValueError (ConfigError)")
        else:
            problems.append(f"{what} was accepted")
    if problems:
        fail("parse_config must reject bad configs with a ValueError: " + "; ".join(problems))

def check_build(s: Subject) -> None:
    """build(config) gives a ZooModel that knows its family and config, with finite tensors."""
    try:
        model = s.fresh_model(perturb=False)
    except Exception as exc:
        fail(f"build({_show(s.raw)}) raised {_describe(exc)}")
    if not isinstance(model, ZooModel):
        fail(f"build() returned {type(model).__name__}, not a zoo.ZooModel")
    if model.family != s.name:
        fail(f"model.family is {model.family!r}, expected {s.name!r}")
    if model.config != s.config:
        fail(f"model.config is {model.config!r}, expected {s.config!r}")
    for key, tensor in model.state_dict().items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            fail(f"tensor {key!r} of a freshly built model is not finite")

def check_log_prob(s: Subject) -> None:
    """log_prob returns finite float [B] in nats, the same for an example alone or in a batch."""
    model, x = s.model, s.data
    with torch.no_grad():
        lp = model.log_prob(x)
        _check_log_prob_tensor(lp, len(x), "log_prob(x)")
        if s.discrete and (lp > 1e-5).any():
            fail(f"log_prob of discrete data is a log-probability, at most 0; got "
                 f"{lp.max().item():.4g}")
        alone = torch.cat([model.log_prob(x[i : i + 1]) for i in range(len(x))])
    gap = (alone - lp).abs().max().item()
    if gap > 1e-4 * (1 + lp.abs().max().item()):
        fail(f"log_prob of an example depends on the rest of the batch (differs by {gap:.3g} "
             "when scored alone; batch statistics in eval mode?)")

def check_log_prob_gradients(s: Subject) -> None:
    """-log_prob(x).mean() back-propagates finite, non-zero gradients into the parameters."""
    model = copy.deepcopy(s.model)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        fail("the model has no trainable parameters")
    loss = -model.log_prob(s.data).mean()
    if not loss.requires_grad:
        fail("log_prob(x) is not differentiable with respect to the parameters "
             "(computed under no_grad or detached?)")
    loss.backward()
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        fail("no parameter received a gradient from log_prob")
    if not all(torch.isfinite(g).all() for g in grads):
        fail("log_prob gives non-finite gradients")
    if all((g == 0).all() for g in grads):
        fail("every gradient of log_prob is zero: the parameters do not affect the likelihood")

def check_sample(s: Subject) -> None:
    """sample(n) has shape [n, *shape], the data's dtype and range, and is reproducible."""
    model, n = s.model, 16
    a = model.sample(n, generator=s.generator(2))
    _check_samples(s, a, n, "sample(16)")
    b = model.sample(n, generator=s.generator(2))
    if not torch.equal(a, b):
        fail("two calls of sample() with generators of the same seed gave different samples")
    for t in (0.5, 2.0):
        _check_samples(s, model.sample(n, temperature=t, generator=s.generator(3)), n,
                       f"sample(16, temperature={t})")
    with torch.no_grad():
        lp = model.log_prob(a)
    if not torch.isfinite(lp).all():
        fail("log_prob of the model's own samples is not finite")

def check_bad_input(s: Subject) -> None:
    """Wrong shape, dtype or range, NaN and bad sample arguments raise a ValueError."""
    model, x = s.model, s.data[:2]
    if s.discrete:
        too_big = x.clone()
        too_big.view(len(x), -1)[:, -1] = s.levels
        negative = x.clone()
        negative.view(len(x), -1)[:, 0] = -1
        cases = [
            ("float values", x.float()),
            ("bool values", x > 0),
            (f"a value equal to levels ({s.levels})", too_big),
            ("a negative value", negative),
            ("a missing batch dimension", x[0]),
            ("an extra trailing dimension", x.unsqueeze(-1)),
            ("a wrong last size", torch.cat([x, x], dim=-1)),
            ("a Python list", x.tolist()),
        ]
    else:
        nan, inf = x.clone(), x.clone()
        nan[0, 0] = float("nan")
        inf[-1, -1] = float("inf")
        cases = [
            ("int64 values", x.round().long()),
            ("NaN", nan),
            ("an infinity", inf),
            ("a missing batch dimension", x[0]),
            ("an extra trailing dimension", x.unsqueeze(-1)),
            ("one dimension too many", torch.cat([x, x[:, :1]], dim=1)),
            ("a Python list", x.tolist()),
        ]
    problems = []
    for what, bad in cases:
        problem = _expect_value_error(lambda bad=bad: model.log_prob(bad))
        if problem:
            problems.append(f"log_prob with {what} {problem}")
    for what, call in [
        ("n=0", lambda: model.sample(0)),
        ("n=-1", lambda: model.sample(-1)),
        ("n=2.5", lambda: model.sample(2.5)),
        ("temperature=0", lambda: model.sample(2, temperature=0.0)),
        ("temperature=-1", lambda: model.sample(2, temperature=-1.0)),
        ("temperature=nan", lambda: model.sample(2, temperature=float("nan"))),
    ]:
        problem = _expect_value_error(call)
        if problem:
            problems.append(f"sample with {what} {problem}")
    if problems:
        fail("bad input must raise ValueError saying what was expected: " + "; ".join(problems))

def check_save_load(s: Subject) -> None:
    """save -> load gives bit-identical log_prob, and identical samples for the same generator."""
    from zoo.artifact import io as artifacts

    model, x = s.model, s.data
    with tempfile.TemporaryDirectory(prefix="zoo-testing-") as tmp, _registered(s.family):
        path = artifacts.save(model, Path(tmp) / "artifact")
        # Another RNG state at load: anything the model re-draws at build time (a random
        # ordering or mask that is not a registered buffer) comes out different.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed + 12345)
            loaded = artifacts.load(path)
    before, after = set(model.state_dict()), set(loaded.state_dict())
    if before != after:
        fail(f"the loaded model has other tensors: {sorted(before ^ after)}")
    with torch.no_grad():
        lp, lp2 = model.log_prob(x), loaded.log_prob(x)
    if not torch.equal(lp, lp2):
        gap = (lp - lp2).abs().max().item()
        fail(f"log_prob differs after save -> load (by up to {gap:.3g} nats): something the "
             "model needs is not in its state_dict (a mask, ordering or permutation kept as a "
             "plain attribute instead of a registered buffer?)")
    a = model.sample(8, generator=s.generator(4))
    b = loaded.sample(8, generator=s.generator(4))
    if not torch.equal(a, b):
        fail("samples differ after save -> load for the same generator: something the sampler "
             "uses is not in the state_dict")
