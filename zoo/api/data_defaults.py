"""The defaults a family starts from on the user's data: for tables and for images.

A run on a family (not a catalog entry) asks the family's optional hooks, with what the
data says: ``config_for_table(rows, columns)`` and ``table_alternatives`` for vectors of a
table (with the columns' grids, and a budget that follows the rows,
``zoo.data.columns.table_budget``), ``config_for_images(Images)`` and
``recipe_for_images(Images)`` for discrete images (``zoo.plugin.image_defaults``). The
user's ``-c`` keys and recipe options win over both, and a line says what was chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from zoo.plugin.family import Family

#: Where ``table_defaults`` hands on the family's alternative configs (not a config key).
ALTERNATIVES = "__alternatives__"


def table_defaults(family: Family, entry: str | None, kind: str, fitted: Mapping[str, Any],
                   chosen: Any, overrides: Mapping[str, Any], recipe_keys: dict[str, Any],
                   own_recipe: bool) -> tuple[dict[str, Any], list[str]]:
    """The config keys a family's defaults for tables set on vector data, and the lines that
    say so; fills the data's training budget into ``recipe_keys`` where the user left it."""
    from zoo.data.columns import describe_grid, table_budget

    hook = getattr(family, "config_for_table", None)
    shape = overrides.get("shape", fitted.get("shape"))
    if entry is not None or kind != "continuous" or hook is None or shape is None \
            or len(shape) != 1:
        return {}, []
    rows = len(chosen.source) if chosen is not None else None
    if rows is None:
        return {}, []
    keys = dict(hook(rows, int(shape[0])))
    alternatives = getattr(family, "table_alternatives", None)
    if alternatives is not None:
        keys[ALTERNATIVES] = list(alternatives(rows, int(shape[0])))
    notes = []
    if chosen.grid is not None and any(step > 0 for step in chosen.grid) \
            and len(chosen.grid) == int(shape[0]):
        keys["grid"] = list(chosen.grid)
        notes.append(f"{chosen.source.name}: columns " + describe_grid(chosen.columns,
                                                                        chosen.grid))
    if not own_recipe:
        budget = table_budget(rows, recipe_keys.get("val_fraction"))
        if "steps" in recipe_keys:  # the user's step count: warm-up and passes fit in it
            steps = int(recipe_keys["steps"])
            budget["warmup_steps"] = min(budget["warmup_steps"], steps // 20)
            budget["eval_every"] = max(1, min(budget["eval_every"], steps // 40))
        for key, value in budget.items():
            recipe_keys.setdefault(key, value)
    return keys, notes


def image_defaults(family: Family, entry: str | None, fitted: Mapping[str, Any], count: int,
                   overrides: Mapping[str, Any], recipe_keys: dict[str, Any],
                   own_recipe: bool) -> tuple[dict[str, Any], list[str]]:
    """The config keys a family's defaults for images set on ``count`` discrete images, and
    the line that says so; fills their training budget into ``recipe_keys`` where the user
    left it (a recipe given whole, ``own_recipe``, is kept as it is)."""
    from zoo.plugin.image_defaults import Images

    hook = getattr(family, "config_for_images", None)
    shape, levels = overrides.get("shape", fitted.get("shape")), fitted.get("levels")
    if entry is not None or hook is None or shape is None or len(shape) != 3 \
            or not isinstance(levels, int):
        return {}, []
    images = Images(tuple(int(s) for s in shape), levels, count)
    keys = {k: v for k, v in dict(hook(images)).items() if k not in overrides}
    budget = getattr(family, "recipe_for_images", None)
    chosen = {}
    if budget is not None and not own_recipe:
        planned = dict(budget(images))
        if "steps" in recipe_keys and "steps" in planned:  # the user's count: passes fit in it
            steps, passes = int(recipe_keys["steps"]), int(planned["steps"])
            if "eval_every" in planned:
                # As many validation passes in the run; one, at its end, in a short one.
                planned["eval_every"] = planned["eval_every"] * steps // passes or steps
            if "warmup_steps" in planned:
                planned["warmup_steps"] = min(planned["warmup_steps"], steps // 20)
        for key, value in planned.items():
            if key not in recipe_keys:
                recipe_keys[key] = chosen[key] = value
    said = ", ".join(f"{k} {v}" for k, v in keys.items())
    run = ", ".join(f"{k} {v}" for k, v in chosen.items())
    size = "x".join(str(s) for s in shape)
    return keys, [f"{family.name} defaults for {count} images of {size} at {levels} levels"
                  f"{' (few: regularised)' if images.few else ''}: {said or 'none'}"
                  + (f"; recipe: {run}" if run else "")]
