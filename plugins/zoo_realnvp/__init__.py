"""RealNVP: a stack of affine coupling layers over continuous vectors, with exact log p.

A first-party plugin written exactly as a third party would write one: it is found through
the ``zoo`` entry-point group and registers its family through ``zoo_register_families``.
"""

from zoo.plugin import hookimpl
from zoo_realnvp.family import RealNVPFamily


@hookimpl
def zoo_register_families(register):
    register(RealNVPFamily())
