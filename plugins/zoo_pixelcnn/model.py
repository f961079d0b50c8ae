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
flip a draw. The fast sampler therefore checks its margin: it keeps its draw only when the
winner's lead over the runner-up exceeds twice a conservative bound on that rounding
difference; otherwise (rare: a few draws in ten thousand, a few pixels of a 28x28 batch)
it takes that pixel's logits from the reference computation itself. Either way it returns
exactly the reference sampler's draw, so both give identical samples for the same generator.
Sampling also turns TF32 off on CUDA (see ``full_float32``), so the bound holds there too.
"""

from __future__ import annotations

import contextlib
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

    def stepper(self, n: int, context: Tensor | None = None) -> Stepper:
        """An incremental evaluator of the logits of ``n`` images, pixel by pixel.

        In raster order: ``logits = stepper.step(i, j)``, then, once the pixel has a value
        ``v`` ``[n]``, ``stepper.write(j, model.embed_values(v))``.
        """
        like = self.net.head.out.weight.detach()
        return self.net.stepper(n, self.shape[2], like, self.features(context))

    def draw(self, n: int, temperature: float, generator: torch.Generator | None,
             known: tuple[Tensor, Tensor] | None, *, fast: bool,
             context: Tensor | None = None) -> Tensor:
        """Raster-order sampling; ``fast`` steps the network incrementally (identical
        samples: a draw too close to call within rounding is decided by the reference)."""
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
        stepper = self.stepper(n, context) if fast else None
        fallbacks = 0
        try:
            with full_float32():
                for i in range(height):
                    for j in range(width):
                        gumbel = gumbel_noise(n, self.levels, generator, noise_device).to(device)
                        fixed = kept[:, i, j] if kept is not None else None
                        if stepper is None:
                            scores = self.logits(x, context)[:, :, i, j] / temperature + gumbel
                        else:
                            logits = stepper.step(i, j)
                            scores = logits / temperature + gumbel
                            if not clear_winner(logits, scores, temperature, fixed):
                                # Too close to call within rounding: decide exactly as the
                                # reference sampler does, from the same image.
                                scores = (self.logits(x, context)[:, :, i, j] / temperature
                                          + gumbel)
                                fallbacks += 1
                        value = scores.argmax(dim=1)
                        if fixed is not None:
                            value = torch.where(fixed, x[:, 0, i, j], value)
                        x[:, 0, i, j] = value
                        if stepper is not None:
                            stepper.write(j, self.embed_values(value))
        finally:
            self.train(was_training)
        self.sampling_stats = {"pixels": height * width, "reference_steps":
                               fallbacks if fast else height * width}
        return x


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
                 device: torch.device) -> Tensor:
    """Standard Gumbel noise ``[n, levels]``: ``argmax(logits + g)`` is a categorical draw."""
    u = torch.rand(n, levels, generator=generator, device=device)
    # u = 0 gives -inf, which can never win the argmax: the draw stays exact.
    return -torch.log(-torch.log(u))


def clear_winner(logits: Tensor, scores: Tensor, temperature: float,
                 fixed: Tensor | None) -> bool:
    """Whether the draws ``argmax(scores)``, ``scores = logits / T + gumbel``, stay the same
    for any logits within rounding of these.

    If each logit may be off by at most ``b``, each score may be off by ``b / T``, and the
    argmax cannot change while the winner leads by more than ``2 b / T``. Pixels that are
    known (completion) are not drawn and need no check.
    """
    top = scores.topk(2, dim=1).values
    lead = top[:, 0] - top[:, 1]
    bound = ROUNDING_TOLERANCE * (1.0 + logits.abs().amax(dim=1)) / temperature
    clear = lead > 2 * bound
    if fixed is not None:
        clear = clear | fixed
    return bool(clear.all())
