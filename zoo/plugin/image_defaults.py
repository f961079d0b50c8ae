"""What a family's defaults for images follow: their size, the levels they use, their number.

``zoo train FAMILY --data IMAGES`` (a family, not a catalog entry) starts from the family's
``config_for_images(images)`` and ``recipe_for_images(images)`` when it has them, where
``images`` is an ``Images``: the shape ``[C, H, W]``, the levels the data actually uses
(``zoo.data.infer``: 17 for sklearn's digits stored as uint8, 2 for black and white), and
the number of images. A family's own defaults (``channels: 64, layers: 8``) suit none of
8x8 digits, 28x28 MNIST and a few thousand images at once: a receptive field larger than
the image, or a one-hot input 200,704 wide.

Two regimes, told apart by ``FEW_IMAGES``: a few thousand images need regularisation
(dropout, an ensemble of orderings) and many passes; tens of thousands need neither, and
their budget is bounded by the time a step takes, which grows with the pixels
(``image_budget``). The first-party families anchor their rules on the catalog's tuned
recipes (the digits entries for few images, the CPU-tier MNIST entries for many), so that
the defaults on those data reproduce what the entries measured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

#: Below this many images a family's defaults regularise, and train for many passes.
FEW_IMAGES = 10_000
#: The pixels of an MNIST image, where ``image_budget``'s step caps are stated.
MNIST_PIXELS = 28 * 28


@dataclass(frozen=True)
class Images:
    """The images a model is about to be trained on, as the defaults see them."""

    shape: tuple[int, ...]
    levels: int
    count: int

    @property
    def pixels(self) -> int:
        """Values per image (channels included)."""
        return math.prod(self.shape)

    @property
    def side(self) -> int:
        """The longer side of the image, in pixels."""
        return max(self.shape[-2:])

    @property
    def few(self) -> bool:
        return self.count < FEW_IMAGES

    @property
    def val_fraction(self) -> float:
        """A tenth held out for validation, a twentieth of many images."""
        return 0.1 if self.few else 0.05

    @property
    def train_count(self) -> int:
        return max(1, int(self.count * (1 - self.val_fraction)))


def image_budget(images: Images, *, batch_size: int, lr: float, epochs: float,
                 steps_at_mnist: int, evals: int, scored_at_mnist: int = 500,
                 **keys: Any) -> dict[str, Any]:
    """Recipe keys for ``epochs`` passes over the training split in batches of
    ``batch_size``, in whole hundreds of steps (at least 100), and at most
    ``steps_at_mnist`` for MNIST-sized images (fewer for larger ones, whose steps cost
    more); a validation pass ``evals`` times in the run, in batches of ``scored_at_mnist``
    MNIST-sized images (more of smaller ones), since a network's activations, not only its
    logits, bound a scoring batch's memory (4,096 28x28 images through 32 channels of a
    PixelCNN: 2 GB); ``keys`` (warm-up, clipping) as given."""
    scale = MNIST_PIXELS / images.pixels
    cap = max(100, int(steps_at_mnist * min(1.0, scale)))
    steps = min(cap, max(100, round(epochs * images.train_count / batch_size / 100) * 100))
    return {"steps": steps, "batch_size": batch_size, "lr": lr,
            "val_fraction": images.val_fraction, "eval_every": max(1, steps // evals),
            "eval_batch_size": max(1, min(4096, int(scored_at_mnist * scale))), **keys}
