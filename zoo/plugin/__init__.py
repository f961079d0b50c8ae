"""Everything a model family needs, in one import.

    from zoo.plugin import Family, ZooModel, AutoregressiveModel, hookimpl, bounds

A plugin subclasses ``Family`` (registered through ``hookimpl``), describes its config as a
frozen dataclass (``bounds``, ``check_shape_field``, ``ConfigError`` for checks across
fields), and builds models that subclass ``ZooModel`` (or ``AutoregressiveModel``, which
adds input checks, temperature and generator handling, and completion for families that
sample one position at a time). A conditional family's Config inherits ``ContextFields``
(``classes`` or ``context``) and its model adds ``ContextInput``'s features inside its
networks (``zoo.plugin.context``). A model that is not autoregressive checks its input with
``check_continuous``/``check_discrete`` and ``check_sampling``. A plugin that brings data
registers a ``Dataset``. Defaults for a user's images come from a family's optional
``config_for_images(Images)`` and ``recipe_for_images(Images)`` (``image_budget``). The
conformance kit is ``zoo.testing``.

The torch-free names (``Family``, ``hookimpl``, the config helpers) load at once, so that a
plugin registers its families without importing torch; the model classes load on first use.
"""

from __future__ import annotations

from zoo.config import bounds, check_shape_field, parse, to_dict
from zoo.data.dataset import Dataset
from zoo.errors import ConfigError
from zoo.hookspecs import hookimpl
from zoo.lazy import lazy_exports
from zoo.plugin.context import ContextFields, ContextKind, ContextSpec, context_parameters
from zoo.plugin.family import DataKind, Family
from zoo.plugin.image_defaults import Images, image_budget

__all__ = ["Family", "DataKind", "ZooModel", "AutoregressiveModel", "hookimpl", "bounds",
           "check_shape_field", "parse", "to_dict", "ConfigError", "Dataset",
           "check_continuous", "check_discrete", "check_sampling", "check_completion",
           "FLOAT32_MAX", "ContextFields", "ContextKind", "ContextSpec", "ContextInput",
           "check_context", "context_parameters", "Images", "image_budget"]

# Torch-dependent names, imported on first use.
_LAZY = {"ZooModel": "zoo.plugin.model", "AutoregressiveModel": "zoo.plugin.autoregressive",
         "ContextInput": "zoo.plugin.context_input", "check_context": "zoo.plugin.context_input",
         **{name: "zoo.checks" for name in ("check_continuous", "check_discrete",
                                            "check_sampling", "check_completion",
                                            "FLOAT32_MAX")}}


__getattr__, __dir__ = lazy_exports('zoo.plugin', globals(), _LAZY, __all__)
