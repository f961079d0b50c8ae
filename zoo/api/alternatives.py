"""Choosing among the configs a family proposes for one table (``table_alternatives``):
the defaults stay unless an alternative is significantly better on the validation rows."""

from __future__ import annotations

from typing import Any

#: An alternative replaces the defaults only when its validation NLL is lower by this many
#: standard errors of the paired, per-row difference: on a validation split of a few dozen
#: rows a lower mean alone is often chance (wine, 36 rows: the full-covariance map won there
#: by its mean and lost by 2.9 nats on the test rows).
SIGNIFICANT = 2.0


def preferred(p: Any, runs: list[Any]) -> Any:
    """The run to keep: the defaults (``runs[0]``), unless an alternative scores the
    validation rows better by ``SIGNIFICANT`` standard errors of the paired difference."""
    import math

    from zoo.infer.evaluation import nll_per_example
    from zoo.training.loop import split_train

    val = split_train(p.examples, p.recipe).val
    if val is None:
        return runs[0]
    base = nll_per_example(runs[0][0], val, p.recipe.eval_batch_size)
    best, best_gain = runs[0], 0.0
    for run in runs[1:]:
        diff = base - nll_per_example(run[0], val, p.recipe.eval_batch_size)
        gain = float(diff.mean())
        stderr = float(diff.std()) / math.sqrt(len(diff)) if len(diff) > 1 else math.inf
        if gain > SIGNIFICANT * stderr and gain > best_gain:
            best, best_gain = run, gain
    return best


def selection_line(p: Any, runs: list[Any], kept: Any) -> str:
    """Which of the configs tried was kept, and the validation NLLs it was chosen on."""
    base = p.family.config_dict(p.config)

    def label(model: Any) -> str:
        changed = {k: v for k, v in p.family.config_dict(model.config).items()
                   if base.get(k) != v}
        return ", ".join(f"{k}: {v}" for k, v in changed.items()) or "the defaults"

    tried = "; ".join(f"{label(m)} {r.val_nll:.4f}" for m, r in runs if r.val_nll is not None)
    return (f"validation NLL of the configs tried: {tried}; kept {label(kept)} (an "
            f"alternative is kept only when it is better by {SIGNIFICANT:g} standard errors)")
