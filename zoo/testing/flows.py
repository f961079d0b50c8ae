"""Checks of the flow protocol: invertibility and the log-determinant against autograd."""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from zoo.plugin.model import ZooModel
from zoo.testing.harness import NotApplicable, Subject, _Failure, fail


def check_invertibility(s: Subject) -> str | None:
    """Flows: invert(forward(x)[0]) == x and forward(invert(z))[0] == z."""
    model, exact = _flow_model(s)
    tol = 1e-6 if exact else 1e-3
    x = s.data.to(_dtype(model))
    z, _ = _forward(model, x)
    back = model.invert(z)
    err = (back - x).abs().max().item()
    if not err <= tol * (1 + x.abs().max().item()):
        fail(f"invert(forward(x)[0]) differs from x by {err:.3g} "
             f"({'float64' if exact else 'float32'}, tolerance {tol:g})")
    z = torch.randn(x.shape, generator=s.generator(9), dtype=x.dtype)
    again, _ = _forward(model, model.invert(z))
    err = (again - z).abs().max().item()
    if not err <= tol * (1 + z.abs().max().item()):
        fail(f"forward(invert(z))[0] differs from z by {err:.3g}")
    return f"round-trip error {err:.1e} ({'float64' if exact else 'float32'})"

def check_log_det(s: Subject) -> str | None:
    """Flows with D <= 4: forward's log-det equals slogdet of the autograd Jacobian (float64)."""
    model, exact = _flow_model(s)
    if s.dims > 4:
        raise NotApplicable(f"the Jacobian is checked for D <= 4 (D = {s.dims}); "
                            "pass a config with a smaller shape")
    tol = 1e-6 if exact else 1e-3
    x = s.data[:8].to(_dtype(model))
    _, logdet = _forward(model, x)
    for i in range(len(x)):
        jac = torch.autograd.functional.jacobian(lambda v: _forward(model, v[None])[0][0], x[i])
        _, expected = torch.linalg.slogdet(jac.reshape(s.dims, s.dims))
        err = abs(logdet[i].item() - expected.item())
        if not err <= tol * (1 + abs(expected.item())):
            fail(f"forward() returns log|det J| = {logdet[i].item():.6g} at x = "
                 f"{x[i].tolist()}, autograd's Jacobian gives {expected.item():.6g}")
    spread = logdet.abs().max().item()
    return f"{len(x)} points, |log det| up to {spread:.3g} ({'float64' if exact else 'float32'})"

def _flow_model(s: Subject) -> tuple[ZooModel, bool]:
    """A float64 copy of a flow (float32 if it cannot run in float64), and which it is."""
    if s.discrete:
        raise NotApplicable("flow checks apply to continuous families")
    if not callable(getattr(s.model, "invert", None)):
        raise NotApplicable("the model has no invert(z): not a flow")
    model = copy.deepcopy(s.model).double()
    try:
        _forward(model, s.data[:2].double())
    except _Failure:
        raise
    except Exception:
        return s.model, False
    return model, True

def _forward(model: ZooModel, x: Tensor) -> tuple[Tensor, Tensor]:
    out = model(x)
    if not (isinstance(out, tuple) and len(out) == 2):
        fail("a flow's forward(x) must return (z, logdet); got "
             f"{type(out).__name__}")
    z, logdet = out
    if tuple(z.shape) != tuple(x.shape) or tuple(logdet.shape) != (len(x),):
        fail(f"forward(x) must return z [B, D] and logdet [B], got {list(z.shape)} and "
             f"{list(logdet.shape)}")
    return z, logdet

def _dtype(model: ZooModel) -> torch.dtype:
    for t in model.parameters():
        return t.dtype
    return torch.float32
