"""What a model is conditioned on: nothing, a label (one of K named classes) or a vector.

A conditional model gives ``p(x | c)``. Which context it takes is part of its config, so an
artifact's ``config.json`` records it and loading rebuilds the same model: a family whose
``Config`` inherits ``ContextFields`` gains two keys,

- ``classes: [names]``: the model is label-conditional over ``len(classes)`` classes (a
  context is an int64 label ``[B]``), and the class names are what the CLI, the card and
  ``zoo classify`` print;
- ``context: [names]``: the model is vector-conditional on ``len(context)`` real features
  (a context is float ``[B, d]``), named (a table's ``--given`` columns) so that
  ``zoo sample --given a=1.5`` can say which is which.

Both empty (the default) is an unconditional model. The family declares the kinds it can
condition on in ``Family.contexts``. This module imports no torch; the layer that turns a
context into features a network adds is ``zoo.plugin.context_input``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from zoo.errors import ConfigError

ContextKind = Literal["label", "vector"]
#: At most this many classes or context features (a bound checked before allocation).
MAX_CONTEXT = 65536


@dataclass(frozen=True, kw_only=True)
class ContextFields:
    """The two config keys of a family that conditions (inherit it in the family's Config).

    Keyword-only, so they follow the family's own fields whatever their defaults.
    """

    classes: tuple[str, ...] = ()
    context: tuple[str, ...] = ()

    def validate_context(self) -> None:
        """Call from the Config's ``validate``: one kind at most, names unique and non-empty."""
        if self.classes and self.context:
            raise ConfigError("a model takes one kind of context: set classes (a label) or "
                              "context (a vector), not both")
        for key, names in (("classes", self.classes), ("context", self.context)):
            if len(names) > MAX_CONTEXT:
                raise ConfigError(f"{key}: at most {MAX_CONTEXT} names, got {len(names)}")
            if any(not name.strip() for name in names):
                raise ConfigError(f"{key}: names must be non-empty")
            seen = set()
            for name in names:
                if name in seen:
                    raise ConfigError(f"{key}: {name!r} is named twice")
                seen.add(name)
        if len(self.classes) == 1:
            raise ConfigError("classes: a label-conditional model needs at least two classes")


@dataclass(frozen=True)
class ContextSpec:
    """The context a model takes: its kind (``None``: none), and the names of its classes or
    features. ``size`` is the number of classes (label) or features (vector)."""

    kind: ContextKind | None = None
    names: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Any) -> ContextSpec:
        """The context of a family's config (unconditional for a config without the keys)."""
        classes = tuple(getattr(config, "classes", ()) or ())
        context = tuple(getattr(config, "context", ()) or ())
        if classes:
            return cls("label", classes)
        if context:
            return cls("vector", context)
        return cls()

    @classmethod
    def from_dict(cls, config: Any) -> ContextSpec:
        """The context recorded in an artifact's ``config.json`` (a plain mapping)."""
        get = config.get if hasattr(config, "get") else (lambda key, default: default)
        classes, context = tuple(get("classes", ()) or ()), tuple(get("context", ()) or ())
        if classes:
            return cls("label", tuple(str(c) for c in classes))
        if context:
            return cls("vector", tuple(str(c) for c in context))
        return cls()

    @property
    def size(self) -> int:
        return len(self.names)

    def __bool__(self) -> bool:
        return self.kind is not None

    def describe(self) -> str:
        """One phrase: ``"label (10 classes: 0, 1, ...)"``, ``"vector (2: x, z)"``, ``"none"``."""
        if self.kind is None:
            return "none"
        shown = ", ".join(self.names[:10]) + (", ..." if self.size > 10 else "")
        unit = "classes" if self.kind == "label" else "features"
        return f"{self.kind} ({self.size} {unit}: {shown})"

    def label_index(self, label: str | int) -> int:
        """The index of a class given by name (or by index, as an int or its digits)."""
        if self.kind != "label":
            raise ValueError("this model takes no label")
        if isinstance(label, str) and label in self.names:
            return self.names.index(label)
        try:
            index = int(label)
        except (TypeError, ValueError):
            index = -1
        if isinstance(label, bool) or not 0 <= index < self.size:
            shown = ", ".join(self.names[:20]) + (", ..." if self.size > 20 else "")
            raise ValueError(f"{label!r} is not a class of this model (classes: {shown})")
        return index


def context_parameters(config: Any, width: int) -> int:
    """The parameters conditioning adds to a model of ``config`` whose networks take the
    context's features into ``width`` units in all (linear maps without bias), counted with
    ``ContextInput``'s statistics: what a family's size estimate adds before allocating."""
    spec = ContextSpec.of(config)
    if not spec:
        return 0
    stats = spec.size if spec.kind == "label" else 2 * spec.size
    return spec.size * width + stats
