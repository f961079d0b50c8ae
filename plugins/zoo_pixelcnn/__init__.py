"""PixelCNN: causal (masked) convolutions over discrete images, with exact likelihood.

A first-party plugin written exactly as a third party would write one: it is found through
the ``zoo`` entry-point group and registers its family through ``zoo_register_families``.
"""

from zoo.plugin import hookimpl
from zoo_pixelcnn.family import PixelCNNFamily


@hookimpl
def zoo_register_families(register):
    register(PixelCNNFamily())
