"""PixelCNN: exact log-likelihood of discrete images in one pass, and two samplers.

``log p(x) = sum over pixels (raster order) of log softmax(f(x))[x_ij]``: the network is
causal, so the logits at pixel ``(i, j)`` see only the pixels before it and one forward
pass scores every pixel at once.

Sampling draws one pixel at a time with the Gumbel-max trick: ``argmax(logits / T + g)``
with ``g = -log(-log(u))`` for ``levels`` uniforms ``u`` per sample and pixel, drawn from
the generator in raster order. ``sample_naive`` gets the logits from a full forward pass per
pixel (the reference); ``sample`` gets them from the incremental steppers in
``zoo_pixelcnn.networks``, a few matrix-vector products per layer and pixel.

The two computations agree only up to float rounding (different summation orders), and a
categorical draw is a step function of the logits, so a tiny difference could in principle
flip a draw. Both samplers therefore draw through ``Decider``: a draw is kept only when the
winner's lead over the runner-up exceeds twice a conservative bound on the rounding of
float32 logits; then it is the draw of the exact logits, whichever computation gave them.
Otherwise (rare: a few draws in ten thousand) the draw is decided by the reference, that
image's logits recomputed in float64, the same bits whichever sampler asks. Either way the
fast sampler returns exactly the naive sampler's draw, for the same generator.
Sampling also turns TF32 off on CUDA (see ``full_float32``), so the bound holds there too.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from zoo.plugin import AutoregressiveModel, ContextInput, ContextSpec
from zoo_pixelcnn.config import PixelCNNConfig
from zoo_pixelcnn.networks import GatedNet, PlainNet, Stepper

#: Bound on |fast logits - reference logits|, relative to 1 + the largest |logit|. Measured
#: float32 rounding differences are below 1e-6 of that: a safety factor of 100 or more.
ROUNDING_TOLERANCE = 1e-4
#: Bound on the float32 rounding of the scores ``logits / T + g`` themselves (absolute:
#: ``|g| < 17``, so about 2e-6; the part relative to the logits is inside the tolerance).
SCORE_ROUNDING = 4e-6


class PixelCNN(AutoregressiveModel):
    """A PixelCNN over int64 images ``[B, 1, H, W]`` with values in ``0..levels-1``."""

    def __init__(self, config: PixelCNNConfig):
        super().__init__()
        self.config = config
        self.shape = tuple(config.shape)
        self.levels = config.levels
        if config.inputs == "embedding":
            self.embedding: nn.Embedding | None = nn.Embedding(config.levels,
                                                               config.embedding_dim)
        else:
            self.embedding = None
        self.net = PlainNet(config) if config.variant == "plain" else GatedNet(config)
        spec = ContextSpec.of(config)
        self.context_input = ContextInput(spec) if spec else None
        #: What the last call of ``sample`` did: pixels stepped and reference fall-backs.
        self.sampling_stats: dict[str, int] = {}

    # --- scoring --------------------------------------------------------------------------

    @property
    def folds_embedding(self) -> bool:
        """Whether scoring feeds the one-hot to a first layer with the embedding folded into
        its kernel: fewer input channels when there are fewer levels than embedding
        dimensions (binary images: 2 instead of 16), the same function."""
        return self.embedding is not None and self.levels < self.embedding.embedding_dim

    def embed_values(self, values: Tensor) -> Tensor:
        """Input features ``[..., E]`` of pixel values (a learned vector, or a scaled value)."""
        if self.embedding is not None:
            # index_select: the same rows as nn.Embedding, with a faster backward on CPU.
            rows = self.embedding.weight.index_select(0, values.reshape(-1))
            return rows.view(*values.shape, -1)
        scale = 2.0 / (self.levels - 1)
        return (values.to(self.net.head.out.weight.dtype) * scale - 1.0).unsqueeze(-1)

    def embed(self, x: Tensor) -> Tensor:
        """Input features ``[B, E, H, W]`` of images ``[B, 1, H, W]``."""
        return self.embed_values(x[:, 0]).permute(0, 3, 1, 2)

    def features(self, context: Tensor | None) -> Tensor | None:
        """The context as the networks take it (``ContextInput``); None for none."""
        return None if context is None else self.context_input(context)

    def logits(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """Logits ``[B, levels, H, W]``; those at ``(i, j)`` depend only on earlier pixels
        (and on the checked ``context`` of a conditional model)."""
        features = self.features(context)
        if self.folds_embedding:
            dtype = self.net.head.out.weight.dtype
            onehot = torch.zeros(x.shape[0], self.levels, *x.shape[2:], dtype=dtype,
                                 device=x.device).scatter_(1, x, 1.0)
            return self.net(onehot, self.embedding.weight, features)
        return self.net(self.embed(x), None, features)

    def conditional_logits(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        """zoo.testing's autoregressive protocol: ``logits`` of int64 images ``[B, 1, H, W]``,
        or of a float one-hot ``[B, levels, 1, H, W]``, differentiably (the conformance kit
        checks causality by gradients through it)."""
        if not x.is_floating_point():
            return self.logits(x, context)
        cond = self.features(context)
        _, height, width = self.shape
        onehot = x.reshape(x.shape[0], self.levels, height, width)
        if self.folds_embedding:
            dtype = self.net.head.out.weight.dtype
            return self.net(onehot.to(dtype), self.embedding.weight, cond)
        if self.embedding is not None:
            features = torch.einsum("bchw,ce->behw", onehot, self.embedding.weight)
        else:
            levels = torch.arange(self.levels, dtype=onehot.dtype, device=onehot.device)
            values = (onehot * levels.view(1, -1, 1, 1)).sum(1, keepdim=True)
            features = values * (2.0 / (self.levels - 1)) - 1.0
        return self.net(features.to(self.net.head.out.weight.dtype), None, cond)

    def log_prob_checked(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        log_probs = F.log_softmax(self.logits(x, context), dim=1)
        return log_probs.gather(1, x).sum(dim=(1, 2, 3))

    # --- sampling -------------------------------------------------------------------------

    def float64_copy(self) -> PixelCNN:
        """A float64 copy of the model (the sampling reference), made again only when a
        parameter or buffer has changed (kept out of the module's state)."""
        tensors = itertools.chain(self.parameters(), self.buffers())
        key = tuple((t.device, t.data_ptr(), t._version) for t in tensors)
        cached = self.__dict__.pop("_float64", None)
        if cached is None or cached[0] != key:
            cached = key, copy.deepcopy(self).to(torch.float64).eval()
        self.__dict__["_float64"] = cached
        return cached[1]

    def stepper(self, n: int, context: Tensor | None = None) -> Stepper:
        """An incremental evaluator of the logits of ``n`` images, pixel by pixel.

        In raster order: ``logits = stepper.step(i, j)``, then, once the pixel has a value
        ``v`` ``[n]``, ``stepper.write(j, model.step_features(v))``.
        """
        like = self.net.head.out.weight.detach()
        table = self.embedding.weight if self.folds_embedding else None
        return self.net.stepper(n, self.shape[2], like, self.features(context), table)

    def step_features(self, values: Tensor) -> Tensor:
        """What ``stepper.write`` takes for pixel values ``[n]``: their input features, or
        their one-hot where the first layer folds the embedding (``folds_embedding``)."""
        return self.step_table().index_select(0, values)

    def step_table(self) -> Tensor:
        """``step_features`` of every level, ``[levels, features]`` (the same numbers as
        ``embed_values``, or the identity for one-hot inputs)."""
        weight = self.net.head.out.weight
        levels = torch.arange(self.levels, device=weight.device)
        if self.folds_embedding:
            return torch.eye(self.levels, dtype=weight.dtype, device=weight.device)
        return self.embed_values(levels).detach()

    def draw(self, n: int, temperature: float, generator: torch.Generator | None,
             known: tuple[Tensor, Tensor] | None, *, fast: bool,
             context: Tensor | None = None) -> Tensor:
        """Raster-order sampling; ``fast`` steps the network incrementally. Both samplers
        draw ``argmax(logits / T + gumbel)`` of the exact logits: a draw too close to call
        within rounding is decided by ``Decider``'s float64 reference, in both."""
        _, height, width = self.shape
        device = self.device
        x = torch.zeros(n, 1, height, width, dtype=torch.long, device=device)
        kept = None  # [n, H, W]: the pixels whose given value is kept
        if known is not None:
            given, where = (t.to(device) for t in known)
            x = torch.where(where, given, x)
            kept = where[:, 0]
        noise_device = generator.device if generator is not None else device
        was_training = self.training
        self.eval()  # no dropout while sampling
        decider = Decider(self, x, temperature, context)
        table = self.step_table() if fast else None
        try:
            with torch.no_grad(), full_float32():
                stepper = self.stepper(n, context) if fast else None
                for i in range(height):
                    # One row's noise at once, [W, n, levels]: on the CPU the same numbers,
                    # in the same order, as one draw per pixel.
                    row_noise = gumbel_noise(n, self.levels, generator, noise_device,
                                             width=width).to(device)
                    for j in range(width):
                        fixed = kept[:, i, j] if kept is not None else None
                        if stepper is None:
                            logits = self.logits(x, context)[:, :, i, j]
                        else:
                            logits = stepper.step(i, j)
                        value = decider(logits, row_noise[j], i, j, fixed)
                        if fixed is not None:
                            value = torch.where(fixed, x[:, 0, i, j], value)
                        x[:, 0, i, j] = value
                        if stepper is not None:
                            stepper.write(j, table.index_select(0, value))
        finally:
            self.train(was_training)
        self.sampling_stats = {"pixels": height * width, "reference_steps": decider.pixels,
                               "reference_draws": decider.draws}
        return x


class Decider:
    """The draw at one pixel, the same function of the image and the noise for both samplers.

    A sampler's float32 logits are within ``b = ROUNDING_TOLERANCE * (1 + max |logit|)`` of
    the exact ones, and its float32 scores within ``SCORE_ROUNDING`` more (``|g| < 17`` for
    float32 uniforms). When the winner leads the runner-up by more than twice that, its
    ``argmax`` is the exact logits' ``argmax`` whichever sampler computed it. Otherwise
    (rare: a few draws in ten thousand) the draw is decided by the reference: the logits of
    that one image, recomputed in float64 by a full forward pass over its rows up to the
    pixel (batch 1, so the same bits whichever sampler asks). Its error (about 1e-15) is
    inside the float32 margin, so where one sampler's draw is clear and the other's is not,
    both still take the exact ``argmax``; and where both ask the reference, they take the
    same draw. The fast sampler therefore returns exactly the naive sampler's draws.
    """

    def __init__(self, model: PixelCNN, x: Tensor, temperature: float,
                 context: Tensor | None):
        self.model, self.x, self.temperature, self.context = model, x, temperature, context
        self.reference: PixelCNN | None = None
        self.pixels = self.draws = 0
        weight = model.net.head.out.weight
        self.difference = torch.tensor([1.0, -1.0], dtype=weight.dtype, device=weight.device)

    def __call__(self, logits: Tensor, gumbel: Tensor, i: int, j: int,
                 fixed: Tensor | None) -> Tensor:
        """The values ``[n]`` drawn at pixel ``(i, j)`` from ``logits`` ``[n, levels]``."""
        t = self.temperature
        scores = torch.add(gumbel, logits, alpha=1.0 / t)
        top = scores.topk(2, dim=1)
        # Unclear: lead <= 2 (tol (1 + m) / T + s), as lead - (2 tol / T) m <= 2 (tol / T + s),
        # with m = max |logit| of the sample; checked for the batch by its smallest value.
        lead = top.values @ self.difference
        lead.sub_(logits.abs().amax(dim=1), alpha=2 * ROUNDING_TOLERANCE / t)
        if fixed is not None:
            lead.masked_fill_(fixed, float("inf"))  # known pixels (completion) are not drawn
        value = top.indices[:, 0]
        threshold = 2 * (ROUNDING_TOLERANCE / t + SCORE_ROUNDING)
        if lead.min() > threshold:
            return value
        unclear = lead <= threshold
        self.pixels += 1
        for b in unclear.nonzero().flatten().tolist():
            self.draws += 1
            exact = self.reference_logits(b, i, j) / t + gumbel[b].to(torch.float64)
            value[b] = exact.argmax()
        return value

    def reference_logits(self, b: int, i: int, j: int) -> Tensor:
        """Image ``b``'s logits at ``(i, j)`` in float64 (rows below ``i`` cannot matter)."""
        if self.reference is None:
            self.reference = self.model.float64_copy()
        context = None if self.context is None else self.context[b : b + 1]
        rows = self.x[b : b + 1, :, : i + 1]
        return self.reference.logits(rows, context)[0, :, i, j]


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Turn off TensorFloat-32 on CUDA while sampling.

    cuDNN convolutions may use TF32 by default (about 1e-3 relative error), matrix products
    do not; the reference pass is convolutions and the incremental one matrix products, so
    the two would differ by far more than float32 rounding. Restored afterwards.
    """
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved


def gumbel_noise(n: int, levels: int, generator: torch.Generator | None,
                 device: torch.device, *, width: int = 1) -> Tensor:
    """Standard Gumbel noise ``[width, n, levels]``: ``argmax(logits + g)`` is a categorical
    draw (one ``[n, levels]`` per pixel of a row)."""
    u = torch.rand(width, n, levels, generator=generator, device=device)
    # u = 0 gives -inf, which can never win the argmax: the draw stays exact.
    return -torch.log(-torch.log(u))

