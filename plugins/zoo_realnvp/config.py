"""The ``realnvp`` family's config: validated before anything is allocated (no torch at import).

Both the family (``family.py``) and the models (``model.py``, ``multiscale.py``) import it;
neither imports the other's module at import time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from zoo.plugin import ConfigError, ContextFields, bounds

#: Defaults of the fields that only vectors use; an image config must leave them alone.
VECTOR_ONLY = {"couplings": 8, "layers": 2, "masks": "alternate", "mask_seed": 0,
               "coupling": "affine", "bins": 8, "spline_bound": 4.0, "standardize": False,
               "whiten": False, "grid": None}
#: The most columns a whitening map (two [D, D] matrices) is built for.
MAX_WHITEN = 1024
#: Vector fields added after vector artifacts were first written: a config that leaves them
#: at these values is stored without them, so such an artifact's config.json is unchanged.
TABLE_KEYS = {"standardize": False, "grid": None, "whiten": False}
#: Defaults of the fields that only images use; a vector config must leave them alone.
IMAGE_ONLY = {"scales": 2, "blocks": 2, "levels": None, "alpha": 0.05}


@dataclass(frozen=True)
class RealNVPConfig(ContextFields):
    """RealNVP over vectors ``shape = [D]`` or images ``shape = [C, H, W]``.

    Vectors: ``couplings`` coupling layers (``coupling``: affine, or rational-quadratic
    splines of ``bins`` bins on ``[-spline_bound, spline_bound]``) whose masks alternate
    between two halves of the coordinates (even/odd ones, or a random split fixed by
    ``mask_seed``), each conditioned by an MLP of ``layers`` hidden layers of width ``hidden``.

    Images: the multi-scale flow of Dinh et al. (2017) with ``scales`` scales. Each scale
    but the last has 3 checkerboard couplings, a squeeze (2x2 pixels become 4 channels),
    3 channel-wise couplings, and factors out half of its channels; the last scale has 4
    checkerboard couplings (channel-wise ones when it is down to one pixel). Every s/t
    network is a convolutional ResNet of ``blocks`` residual blocks with ``hidden`` channels.
    With ``levels`` the data are discrete (integers ``0..levels-1``): the flow models the
    continuous density of ``x + u`` on ``[0, levels]^D``, through the logit of
    ``alpha + (1 - 2 alpha) (x + u) / levels``, and is trained and scored with uniform
    dequantization, so the NLL it reports for discrete data is an upper bound.

    Tables (vectors): with ``standardize`` the first layer is an elementwise affine map
    ``(x - shift) / exp(log_scale)`` set to the training rows' mean and standard deviation
    when training starts (frozen parameters, stored with the weights); its
    log-determinant is in ``log_prob``, so densities stay on the data's own scale. ``grid``
    gives each column's grid step (0: continuous): a column recorded on a grid (integers,
    fixed decimals) is dequantized with uniform noise of one step in ``log_likelihood``,
    which is then a bound, and samples are rounded to the grid. ``whiten`` (with
    ``standardize``) adds the full-covariance map ``C^-1/2`` after it, ``C`` the training
    rows' correlation: a fresh flow is then exactly the
    full-covariance Gaussian fitted to the rows, and the couplings only model what it misses.

    Both: the log-scale is softly bounded to ``[-scale_bound, scale_bound]`` so a bad step
    cannot blow the scale up. ``classes`` / ``context`` (``zoo.plugin.context``) make the
    flow conditional: the context feeds every coupling network (an extra input of each
    vector coupling's MLP; a map added to each image ResNet's first layer).
    """

    shape: tuple[int, ...]
    couplings: int = field(default=8, metadata=bounds(1, 256))
    hidden: int = field(default=64, metadata=bounds(1, 8192))
    layers: int = field(default=2, metadata=bounds(1, 16))
    activation: Literal["relu", "silu", "tanh", "elu"] = "relu"
    scale_bound: float = field(default=3.0, metadata=bounds(0.01, 20.0))
    masks: Literal["alternate", "random"] = "alternate"
    mask_seed: int = field(default=0, metadata=bounds(0, 2**31 - 1))
    # --- the coupling transform (issue 17) -------------------------------------------------
    # affine: y = x * exp(s) + t. spline: a monotone rational-quadratic spline of `bins` bins
    # on [-spline_bound, spline_bound], the identity outside (Durkan et al., 2019).
    coupling: Literal["affine", "spline"] = "affine"
    bins: int = field(default=8, metadata=bounds(2, 64))
    spline_bound: float = field(default=4.0, metadata=bounds(0.1, 100.0))
    # Image flows (issue 16); vectors keep the defaults above.
    scales: int = field(default=2, metadata=bounds(1, 8))
    blocks: int = field(default=2, metadata=bounds(1, 64))
    levels: int | None = field(default=None, metadata=bounds(2, 65536))
    alpha: float = field(default=0.05, metadata=bounds(0.0, 0.4))
    # Tables (issue 27); the defaults are what vector flows were before.
    standardize: bool = False
    grid: tuple[float, ...] | None = None
    # With standardize: the full covariance, not each column's spread (issue 27).
    whiten: bool = False

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def validate(self) -> None:
        self.validate_context()
        if len(self.shape) == 1:
            self._validate_vector()
        elif len(self.shape) == 3:
            self._validate_image()
        else:
            raise ConfigError(f"shape: realnvp models vectors, expected [D], or images, expected "
                              f"[C, H, W]; got {list(self.shape)}")

    def _validate_vector(self) -> None:
        _only(self, IMAGE_ONLY, "images [C, H, W]")
        if self.whiten and not self.standardize:
            raise ConfigError("whiten: the full-covariance map is a kind of standardization; "
                              "set standardize: true with it")
        if self.whiten and self.shape[0] > MAX_WHITEN:
            raise ConfigError(f"whiten: at most {MAX_WHITEN} columns (a [D, D] map), got "
                              f"{self.shape[0]}")
        # One coordinate has nothing to couple unless a context drives the couplings.
        least = 1 if self.context or self.classes else 2
        if not least <= self.shape[0] <= 65536:
            raise ConfigError(f"shape: D must be between {least} and 65536, got "
                              f"{self.shape[0]}")
        if self.grid is not None:
            if len(self.grid) != self.shape[0]:
                raise ConfigError(f"grid: one step per column, {self.shape[0]} of them; got "
                                  f"{len(self.grid)}")
            if any(not step >= 0 or step == float("inf") for step in self.grid):
                raise ConfigError("grid: steps are finite and >= 0 (0: a continuous column)")
        per_output = 3 * self.bins - 1 if self.coupling == "spline" else 2
        params = self.couplings * self.hidden * (
            self.shape[0] * (1 + per_output) + (self.layers - 1) * self.hidden)
        if params > 2_000_000_000:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than 2e9")

    def _validate_image(self) -> None:
        _only(self, VECTOR_ONLY, "vectors [D] (images use scales and blocks)")
        c, h, w = self.shape
        if min(self.shape) < 1 or c > 4096 or h * w > 1 << 20:
            raise ConfigError(f"shape: [C, H, W] must be positive with C <= 4096 and at most "
                              f"2**20 pixels, got {list(self.shape)}")
        step = 2 ** (self.scales - 1)
        if h % step or w % step:
            raise ConfigError(f"shape: {self.scales} scales halve H and W {self.scales - 1} "
                              f"times, so both must be multiples of {step}, got {h}x{w}")
        last_c, last_px = c * 2 ** (self.scales - 1), (h // step) * (w // step)
        if last_px < 2 and last_c < 2:
            raise ConfigError(f"shape: {list(self.shape)} with {self.scales} scale(s) leaves "
                              "a single value at the last scale; nothing to couple")
        couplings = 6 * (self.scales - 1) + 4
        width = max(c * 2 ** self.scales, 1)
        params = couplings * self.hidden * (9 * (2 * self.blocks * self.hidden + 3 * width))
        if params > 2_000_000_000:
            raise ConfigError(f"config describes about {params:.3g} parameters, more than 2e9")


def _only(config: RealNVPConfig, defaults: dict[str, object], what: str) -> None:
    """Refuse a field set away from its default where it would be silently ignored."""
    for name, default in defaults.items():
        if getattr(config, name) != default:
            raise ConfigError(f"{name}: applies only to {what}; shape is {list(config.shape)}")
