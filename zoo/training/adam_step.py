"""The trainer's Adam(W) step: torch's fused kernel, called without ``Optimizer.step``.

``torch.optim``'s ``step`` wraps its kernel in layers of Python: the learning-rate
scheduler's call counter, the profiler's ``record_function``, grad-mode and dynamo guards,
step hooks, state checks, and a regrouping of the tensors by device and dtype. On a small
model that is a large part of the step: RealNVP on two moons (35,344 numbers in the
trainer's one flat tensor) took 2.52 ms a step through ``optimizer.step()`` and 2.30 ms
calling the kernel directly (measured side by side, one thread, 2026-12-08).

``AdamStep`` calls that same kernel (``torch._fused_adam_`` / ``torch._fused_adamw_``) on
the optimizer's own state, with its current hyperparameters, after counting the step as
torch does. The optimizer, its ``state_dict``, the scheduler and checkpoints therefore see
exactly what ``optimizer.step()`` leaves (the tests compare the two number for number). It
applies only where it is that same computation: Adam or AdamW with ``fused=True``, one
group, no AMSGrad, no step hooks, and a state that the first, ordinary step created.
"""

from __future__ import annotations

import torch


class AdamStep:
    """``step()``: one optimizer step, through the fused kernel where it applies (see the
    module docstring), else through ``optimizer.step()``; ``zero_grad()`` alike."""

    def __init__(self, optimizer: torch.optim.Optimizer):
        self.optimizer = optimizer
        self.applies = _applies(optimizer)

    def zero_grad(self) -> None:
        """``optimizer.zero_grad(set_to_none=True)``: what it does, without its wrappers."""
        if not self.applies:
            self.optimizer.zero_grad(set_to_none=True)
            return
        for p in self.optimizer.param_groups[0]["params"]:
            p.grad = None

    def step(self) -> None:
        optimizer = self.optimizer
        group = optimizer.param_groups[0]
        params = [p for p in group["params"] if p.grad is not None] if self.applies else []
        states = [optimizer.state.get(p) for p in params]
        if not params or not all(states) or isinstance(group["lr"], torch.Tensor):
            optimizer.step()  # and the first step creates the state
            return
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1)
        kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
        beta1, beta2 = group["betas"]
        kernel(params, [p.grad for p in params], [s["exp_avg"] for s in states],
               [s["exp_avg_sq"] for s in states], [], steps, amsgrad=False, lr=group["lr"],
               beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"], eps=group["eps"],
               maximize=False, grad_scale=None, found_inf=None)


def _applies(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``AdamStep`` computes what ``optimizer.step()`` would."""
    if type(optimizer) not in (torch.optim.Adam, torch.optim.AdamW):
        return False
    if len(optimizer.param_groups) != 1:
        return False
    group = optimizer.param_groups[0]
    flags_ok = (group.get("fused") and not group.get("amsgrad") and not group.get("maximize")
                and not group.get("capturable") and not group.get("differentiable")
                and "decoupled_weight_decay" in group)
    params = group["params"]
    same_place = len({(p.device, p.dtype) for p in params}) == 1
    from torch.optim import optimizer as module

    hooks = (getattr(optimizer, "_optimizer_step_pre_hooks", None)
             or getattr(optimizer, "_optimizer_step_post_hooks", None)
             or getattr(module, "_global_optimizer_pre_hooks", None)
             or getattr(module, "_global_optimizer_post_hooks", None))
    return bool(flags_ok and same_place and not hooks)
