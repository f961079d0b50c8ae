"""torch.hub entry points: ``torch.hub.load("ORG/zoo", "realnvp_moons")`` returns a loaded model.

There is one function per catalog entry, named after it (``realnvp-moons`` is
``realnvp_moons``), made from the catalog when this file is imported, so that they cannot
drift from it; each pulls or builds its entry (``zoo.load``) and its docstring is the
entry's description. ``torch.hub.list`` lists them.

torch.hub uses a repository as it is, not installed: this file puts the checkout (and its
first-party plugins) first on ``sys.path``, and registers the first-party families in
process when no installed distribution registered them through their entry points.
"""

import importlib
import os
import sys

dependencies = ["torch", "torchvision", "safetensors", "pluggy", "click", "huggingface_hub",
                "yaml", "sklearn", "filelock", "platformdirs", "tqdm", "matplotlib", "PIL"]

_HERE = os.path.dirname(os.path.abspath(__file__))
for _path in (os.path.join(_HERE, "plugins"), _HERE):
    if _path not in sys.path:
        sys.path.insert(0, _path)

FIRST_PARTY = {"realnvp": "zoo_realnvp", "made": "zoo_made", "pixelcnn": "zoo_pixelcnn"}


def _register_first_party() -> None:
    """Register each first-party family that no installed plugin provides (a plain checkout
    has no entry points)."""
    from zoo.plugin import registry

    known = set(registry.registry().names("families"))
    for family, module in FIRST_PARTY.items():
        if family not in known:
            registry.register_plugin(importlib.import_module(module), name=module)


def _loader(name: str, description: str):
    def load(device: str = "cpu", offline: bool = False):
        import zoo

        return zoo.load(name, device=device, offline=offline)

    load.__name__ = load.__qualname__ = name.replace("-", "_").replace(".", "_")
    load.__doc__ = (f"{description}\n\nThe zoo catalog entry {name!r}: pulled (or built from "
                    "its recipe) into $ZOO_HOME and loaded. ``device`` places the model; "
                    "``offline`` never touches the network.")
    return load


def _entry_functions() -> dict:
    from zoo.catalog import catalog

    return {fn.__name__: fn for fn in (_loader(e.name, e.description) for e in catalog())}


_register_first_party()
globals().update(_entry_functions())
