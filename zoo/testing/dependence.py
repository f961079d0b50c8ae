"""Making the subject strongly dependent before its samplers are tested.

A freshly initialised model, nudged a little, is close to independent across positions: its
joint distribution is nearly the product of its marginals. A sampler that ignores every
earlier position (it draws each one from the logits of a blank input, say) then follows the
enumerated probabilities closely enough to pass a chi-square test. So before testing
samplers the kit moves the parameters, by gradient ascent on the total correlation
``KL(p || product of p's marginals)``, until the total variation between the joint and the
product of its marginals reaches ``target`` (a model already that dependent is used as it is).
A sampler blind to context then draws from a distribution far from the model's, and fails.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor

from zoo.plugin.model import ZooModel
from zoo.testing.harness import Subject, _describe, fail

#: Ascent stops once the model is this dependent (a margin above the minimum), or after
#: ``MAX_STEPS`` steps of Adam at ``LEARNING_RATE``.
TARGET = 0.3
MAX_STEPS = 200
LEARNING_RATE = 0.03


def dependence(log_probs: Tensor, inputs: Tensor, levels: int) -> tuple[Tensor, Tensor]:
    """Total variation and total correlation between the distribution ``softmax(log_probs)``
    over ``inputs`` (every combination, ``[N, D]`` levels) and the product of its marginals."""
    p = torch.softmax(log_probs.double(), 0)
    log_product = torch.zeros_like(p)
    for d in range(inputs.shape[1]):
        marginal = torch.zeros(levels, dtype=p.dtype).index_add(0, inputs[:, d], p)
        log_product = log_product + marginal.clamp_min(1e-300).log()[inputs[:, d]]
    tv = 0.5 * (p - log_product.exp()).abs().sum()
    tc = (p * (p.clamp_min(1e-300).log() - log_product)).sum()
    return tv, tc


def dependent_model(s: Subject, inputs: Tensor) -> tuple[ZooModel, str]:
    """The subject's model, made strongly dependent over ``inputs`` (all ``C**D`` of them),
    and a note saying how dependent it is; fails with advice when it cannot be made so."""
    flat = inputs.reshape(len(inputs), -1)
    model = s.model
    with torch.no_grad():
        tv, _ = dependence(model.log_prob(inputs), flat, s.levels)
    if s.min_dependence <= 0 or tv.item() >= s.min_dependence:
        return model, f"dependence (TV to the product of marginals) {tv.item():.2f}"
    model = copy.deepcopy(model).eval()
    params = [p for p in model.parameters() if p.is_floating_point() and p.requires_grad]
    if not params:
        fail("the model has no parameters the kit could move to make it strongly dependent")
    optimiser = torch.optim.Adam(params, lr=LEARNING_RATE)
    start, steps = tv.item(), 0
    target = max(TARGET, s.min_dependence)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        try:
            while steps < MAX_STEPS:
                tv, tc = dependence(model.log_prob(inputs), flat, s.levels)
                if tv.item() >= target or not torch.isfinite(tc):
                    break
                steps += 1
                optimiser.zero_grad()
                (-tc).backward()
                optimiser.step()
        except Exception as exc:
            fail(f"making the model strongly dependent (gradient ascent on its parameters) "
                 f"failed: {_describe(exc)}")
    model.eval()
    with torch.no_grad():
        tv, _ = dependence(model.log_prob(inputs), flat, s.levels)
    if not tv.item() >= s.min_dependence:
        fail(f"could not make the model strongly dependent: the total variation between its "
             f"joint distribution and the product of its marginals reached {tv.item():.3f} "
             f"(from {start:.3f}, after {steps} steps of gradient ascent), below "
             f"{s.min_dependence}; on so independent a model a sampler that ignores earlier "
             "positions would pass. Pass a config whose model can express dependence between "
             "positions (more hidden units, layers or a larger kernel), or min_dependence=0 "
             "to family_checks/check_family to accept the weaker test")
    return model, (f"dependence (TV to the product of marginals) {start:.2f} raised to "
                   f"{tv.item():.2f} in {steps} steps")
