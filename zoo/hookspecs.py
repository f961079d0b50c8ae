"""The plugin contract: one hook per extension point.

A plugin is a module (or any object) with functions decorated by ``zoo.plugin.hookimpl`` whose
names match the hooks below. It is found through the ``zoo`` entry-point group::

    [project.entry-points.zoo]
    my_family = "my_package"

Each hook receives a ``register`` callback (the style of simonw/llm): call it once per
thing the plugin provides. Registration must be cheap: ``zoo list`` and ``zoo --help`` run
every hook, so keep heavy imports (torch, data) inside the functions that need them.
"""

from __future__ import annotations

import pluggy

hookspec = pluggy.HookspecMarker("zoo")
hookimpl = pluggy.HookimplMarker("zoo")


@hookspec
def zoo_register_families(register):
    """Register model families.

    Call ``register(family)`` with an instance of a ``zoo.Family`` subclass for each family
    the plugin provides. The family's ``name`` must be unique across all plugins; two
    providers of one name are an error that names both plugins.
    """


@hookspec
def zoo_register_datasets(register):
    """Register datasets.

    Call ``register(dataset)`` with a ``zoo.Dataset`` for each dataset the plugin provides.
    A dataset has a unique ``name``, its kind (``"continuous"`` or ``"discrete"``), the shape
    of one example, the number of levels for discrete data, and a ``loader(split, root)``
    function returning the whole split (``"train"`` or ``"test"``) as one tensor: float32
    ``[N, D]`` or int64 ``[N, *shape]``. ``root`` is the data folder (``$ZOO_DATA``) for
    datasets that read files.
    """


@hookspec
def zoo_register_entries(register):
    """Register catalog entries (named, buildable artifacts).

    Call ``register(entry)`` with a mapping that has the same fields as an entry of
    ``registry.yaml``: ``name``, ``family``, ``config``, ``dataset``, ``recipe``,
    ``description``, and optionally ``metrics`` and ``sources``. Entries are validated
    exactly as the built-in catalog is.
    """
