"""Affine couplings written out by hand (``zoo_realnvp.fused``): the same function and the
same gradients as the couplings through autograd, and used only where that holds."""

from __future__ import annotations

import pytest
import torch
from zoo_realnvp import fused

import zoo


def perturbed(config: dict, seed: int = 0):
    torch.manual_seed(seed)
    model = zoo.get_family("realnvp").build(config).double()
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.normal_(0.0, 0.4)
    return model


def outputs_and_gradients(model, x: torch.Tensor, fuse: bool):
    """log_prob, z, log|det| and the gradients of a weighted log_prob sum wrt x and every
    trainable parameter."""
    model.fuse = fuse
    model.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    log_p = model.log_prob(x)
    (log_p * torch.linspace(-1, 2, len(x), dtype=x.dtype)).sum().backward()
    z, logdet = model(x.detach())
    grads = [x.grad] + [p.grad for p in model.parameters() if p.requires_grad]
    return [log_p.detach(), z.detach(), logdet.detach(), *grads]


CONFIGS = [
    {"shape": [2], "couplings": 8, "hidden": 16},
    {"shape": [2], "couplings": 1, "hidden": 16},
    {"shape": [3], "couplings": 2, "hidden": 8, "layers": 1},
    {"shape": [5], "couplings": 3, "hidden": 8, "layers": 3, "activation": "tanh"},
    {"shape": [5], "couplings": 4, "hidden": 8, "masks": "random", "mask_seed": 3},
    {"shape": [4], "couplings": 5, "hidden": 8, "standardize": True},
]


@pytest.mark.parametrize("config", CONFIGS)
def test_fused_couplings_are_the_same_function_with_the_same_gradients(config):
    model = perturbed(config)
    x = torch.randn(9, config["shape"][0], dtype=torch.float64)
    got = outputs_and_gradients(model, x, fuse=True)
    want = outputs_and_gradients(model, x, fuse=False)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g is not None and torch.allclose(g, w, rtol=1e-10, atol=1e-10)
    assert not torch.allclose(got[1], x, atol=1e-2)  # the flow really transforms


def test_the_backward_passes_a_numerical_gradient_check():
    model = perturbed({"shape": [3], "couplings": 3, "hidden": 4})
    weights = [t.detach().clone().requires_grad_() for stack in model.nets
               for pair in zip(stack.weights, stack.biases) for t in pair]
    x = torch.randn(4, 3, dtype=torch.float64)
    first, second = (h.clone().requires_grad_() for h in model._halves(x))
    rows = fused.WeightRows().of(weights, 3)
    for plan in ((3, 3.0, "relu", 3, None, rows), (3, 3.0, "relu", 3, 1.5, rows)):
        def couplings(a, b, *w, plan=plan):
            return fused.AffineCouplings.apply(a, b, plan, *w)

        assert torch.autograd.gradcheck(couplings, (first, second, *weights))


def test_training_takes_the_fused_path_and_other_couplings_do_not(monkeypatch):
    calls = []
    real = fused.AffineCouplings.apply
    monkeypatch.setattr("zoo_realnvp.model.AffineCouplings.apply",
                        lambda *a: calls.append(1) or real(*a))
    x = torch.randn(8, 2, dtype=torch.float64)
    perturbed({"shape": [2], "couplings": 4, "hidden": 8}).log_prob(x)
    assert calls == [1]
    for other in ({"coupling": "spline"}, {"activation": "silu"}, {"classes": ["a", "b", "c"]}):
        model = perturbed({"shape": [2], "couplings": 4, "hidden": 8, **other})
        given = {"context": torch.zeros(8, dtype=torch.long)} if "classes" in other else {}
        model.log_prob(x, **given)
    assert calls == [1]


@pytest.mark.parametrize("couplings", [3, 4])
def test_changing_an_output_in_place_before_backward_is_refused(couplings):
    # One output half is a view of a tensor the backward reads, the other is read itself:
    # both refuse a change that would make the gradients silently wrong.
    model = perturbed({"shape": [2], "couplings": couplings, "hidden": 8})
    x = torch.randn(8, 2, dtype=torch.float64)
    for half in range(2):
        outputs = model._fused(x)
        loss = outputs[0].square().sum() + outputs[1].square().sum() + outputs[2].sum()
        with pytest.raises(RuntimeError, match="inplace"):
            outputs[half].add_(1.0)
            loss.backward()


def test_training_fused_follows_the_unfused_path_after_the_weights_move():
    # The trainer moves every weight into one flat tensor and back: views of the weights
    # made before (fused.WeightRows) must follow, or training reads stale numbers.
    from zoo.catalog.recipe import Recipe
    from zoo.data.source import Examples, TensorSource
    from zoo.training.loop import maximise_likelihood

    data = torch.randn(512, 2) * torch.tensor([1.0, 0.3]) + torch.tensor([0.5, -1.0])
    examples = Examples(TensorSource(data), "continuous")
    trained = []
    for fuse in (True, False):
        model = perturbed({"shape": [2], "couplings": 4, "hidden": 8}).float()
        model.fuse = fuse
        model.log_prob(data[:4])  # views made on the weights' first memory
        maximise_likelihood(model, examples, Recipe(steps=40, batch_size=64, lr=3e-3,
                                                    val_fraction=0.0, eval_every=40),
                            progress=False, device=torch.device("cpu"))
        model.log_prob(data[:4])  # and after the trainer gave them their own memory again
        trained.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    start = perturbed({"shape": [2], "couplings": 4, "hidden": 8}).float()
    assert (trained[0] - torch.cat([p.flatten() for p in start.parameters()])).abs().max() > 1e-2
    assert torch.allclose(trained[0], trained[1], atol=1e-4)


def test_a_compiled_flow_traces_the_plain_couplings():
    # The compiler fuses the plain operations itself; the hand-written backward would be one
    # opaque node in its graph.
    model = perturbed({"shape": [2], "couplings": 4, "hidden": 8})
    x = torch.randn(8, 2, dtype=torch.float64)
    graphs = []

    def backend(graph_module, example_inputs):
        graphs.append(graph_module.code)
        return graph_module.forward

    torch._dynamo.reset()
    compiled = torch.compile(model.log_prob, backend=backend, fullgraph=True)
    assert torch.allclose(compiled(x), model.log_prob(x))
    assert len(graphs) == 1 and ("addmm" in graphs[0] or "linear" in graphs[0])
    assert "AffineCouplings" not in graphs[0] and "autograd_function" not in graphs[0]


def test_under_autocast_the_couplings_run_through_autograd(monkeypatch):
    calls = []
    real = fused.AffineCouplings.apply
    monkeypatch.setattr("zoo_realnvp.model.AffineCouplings.apply",
                        lambda *a: calls.append(1) or real(*a))
    model = perturbed({"shape": [2], "couplings": 4, "hidden": 8}).float()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = -model.log_prob(torch.randn(8, 2)).float().mean()
    loss.backward()
    assert calls == [] and all(torch.isfinite(p.grad).all() for p in model.parameters()
                               if p.requires_grad)
