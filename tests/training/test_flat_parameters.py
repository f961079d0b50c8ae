"""The trainer's flat parameters: one tensor for the optimizer, the same update as separate ones."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from zoo.training.flat_parameters import ALIGN, FlatParameters


def _model() -> nn.Module:
    torch.manual_seed(0)
    # Odd sizes, so that segments need padding, and a bias of one number.
    return nn.Sequential(nn.Linear(3, 7), nn.Tanh(), nn.Linear(7, 5), nn.Tanh(), nn.Linear(5, 1))


def _train(model: nn.Module, optimizer, gather, n: int = 6) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    for _ in range(n):
        x = torch.randn(16, 3, generator=generator)
        optimizer.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        gather()
        optimizer.step()
    return [p.detach().clone() for p in model.parameters()]


def _adamw(params, fused: bool = True):
    return torch.optim.AdamW(params, lr=0.05, weight_decay=0.1, fused=fused)


@pytest.mark.parametrize("fused", [True, False])
def test_stepping_the_flat_tensor_is_stepping_each_parameter(fused):
    plain = _model()
    want = _train(plain, _adamw(plain.parameters(), fused), lambda: None)
    model = _model()
    flat = FlatParameters.of(list(model.parameters()))
    assert flat is not None
    got = _train(model, _adamw([flat.flat], fused), flat.gather_grads)
    for w, g, start in zip(want, got, _model().parameters()):
        assert not torch.equal(w, start.detach())  # training moved every parameter
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-7)
    # The parameters are views of the flat tensor, aligned, with zero pads between them.
    base = flat.flat.data_ptr()
    assert all((p.data_ptr() - base) % (ALIGN * 4) == 0 for p in model.parameters())
    live = torch.zeros(flat.flat.numel(), dtype=torch.bool)
    for offset, size in zip(flat.offsets, flat.sizes):
        live[offset:offset + size] = True
    assert not bool(live.all()) and bool((flat.flat.detach()[~live] == 0).all())


def test_release_gives_every_parameter_its_own_memory():
    model = _model()
    flat = FlatParameters.of(list(model.parameters()))
    before = [p.detach().clone() for p in model.parameters()]
    assert len({p.untyped_storage().data_ptr() for p in model.parameters()}) == 1
    flat.release()
    params = list(model.parameters())
    assert len({p.untyped_storage().data_ptr() for p in params}) == len(params)
    for b, p in zip(before, params):
        assert torch.equal(b, p)


def test_the_per_parameter_state_is_what_an_optimizer_of_the_parameters_holds():
    plain = _model()
    separate = _adamw(plain.parameters())
    _train(plain, separate, lambda: None)
    model = _model()
    flat = FlatParameters.of(list(model.parameters()))
    joined = _adamw([flat.flat])
    _train(model, joined, flat.gather_grads)

    per, want = flat.per_parameter_state(joined.state_dict()), separate.state_dict()
    assert per["param_groups"] == want["param_groups"]
    assert set(per["state"]) == set(want["state"])
    for i, entry in want["state"].items():
        for key, value in entry.items():
            torch.testing.assert_close(per["state"][i][key], value, rtol=1e-6, atol=1e-7)
    # ...and back: a checkpoint of separate parameters resumes a flat run.
    back = flat.flat_state(want)
    for key, value in joined.state_dict()["state"][0].items():
        torch.testing.assert_close(back["state"][0][key], value, rtol=1e-6, atol=1e-7)
    # A state that does not fit is refused with the reason, not loaded wrongly.
    with pytest.raises(ValueError, match="parameters"):
        flat.flat_state({"state": {}, "param_groups": [{**want["param_groups"][0], "params": [0]}]})
    want["state"][1]["step"] = want["state"][1]["step"] + 1
    with pytest.raises(ValueError, match="differs"):
        flat.flat_state(want)


def test_checkpoints_hold_the_optimizer_state_per_parameter(tmp_path):
    """A checkpoint does not depend on the flattening: its optimizer state is the one an
    optimizer of the separate parameters holds (so checkpoints written before it resume)."""
    from zoo import api
    from zoo.catalog.recipe import Recipe
    from zoo.training import checkpoint as ckpt
    from zoo.training.loop import maximise_likelihood

    torch.manual_seed(0)
    model = api.get_family("realnvp").build({"shape": [2], "couplings": 2, "hidden": 8})
    maximise_likelihood(model, api.get_dataset("moons"),
        Recipe(steps=10, batch_size=32, lr=1e-2, val_fraction=0.0, eval_every=10),
        progress=False, checkpoint_dir=tmp_path, checkpoint_every=10, compile=False)
    tensors, _ = ckpt.load(ckpt.latest(tmp_path))
    shapes = {name: tuple(t.shape) for name, t in tensors.items()
              if name.startswith("optimizer.") and name.endswith(".exp_avg")}
    params = list(model.parameters())
    assert sorted(shapes) == sorted(f"optimizer.{i}.exp_avg" for i in range(len(params)))
    assert [shapes[f"optimizer.{i}.exp_avg"] for i in range(len(params))] == [
        tuple(p.shape) for p in params]


def test_nothing_to_gain_or_not_joinable_is_left_alone():
    assert FlatParameters.of([nn.Parameter(torch.ones(3))]) is None
    frozen = [nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2), requires_grad=False)]
    assert FlatParameters.of(frozen) is None
    mixed = [nn.Parameter(torch.ones(3)), nn.Parameter(torch.ones(2, dtype=torch.float64))]
    assert FlatParameters.of(mixed) is None
