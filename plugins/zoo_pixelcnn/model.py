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
        try:
            with torch.no_grad(), full_float32():
                table = self.step_table() if fast else None
                stepper = self.stepper(n, context) if fast else None
                for i in range(height):
                    # One row's noise at once, [W, n, levels]: on the CPU the same numbers,
                    # in the same order, as one draw per pixel.
                    decider.start_row(gumbel_noise(n, self.levels, generator, noise_device,
                                                   width=width).to(device))
                    if fast:
                        self.fast_row(stepper, decider, table, x, kept, i)
                    else:
                        self.naive_row(decider, x, kept, i, context)
        finally:
            self.train(was_training)
        self.sampling_stats = {"pixels": height * width, "reference_steps": decider.pixels,
                               "reference_draws": decider.draws}
        return x

    def naive_row(self, decider: Decider, x: Tensor, kept: Tensor | None, i: int,
                  context: Tensor | None) -> None:
        """Row ``i`` of ``x``, each pixel's logits from a full forward pass, each pixel's
        close calls decided before the next pixel."""
        pixels = x[:, 0, i].unbind(1)  # views [n], written in place
        for j in range(x.shape[-1]):
            value = decider.score(self.logits(x, context)[:, :, i, j], j)
            if kept is not None:
                value = torch.where(kept[:, i, j], pixels[j], value)
            pixels[j].copy_(value)
            if decider.unclear_pixels(i, j, j + 1, kept):
                decider.settle(i, j, pixels[j])

    def fast_row(self, stepper: Stepper, decider: Decider, table: Tensor, x: Tensor,
                 kept: Tensor | None, i: int) -> None:
        """Row ``i`` of ``x`` from the stepper, the close calls checked once for the row.

        Every pixel first takes its float32 draw; then the row's leads are checked at once.
        Up to the first pixel with a close call every draw stands; that pixel's close calls
        go to the reference. If the reference changes a draw (rarer still: a close call is
        mostly a few float32 roundings wide, and the float32 draw is right), the row is
        stepped again from the next pixel on (its per-row parts recomputed, the pixels to
        the left kept); otherwise the draws after it stand too, and the next close call is
        decided in turn.
        """
        pixels = x[:, 0, i].unbind(1)  # views [n], written in place
        width, start = x.shape[-1], 0
        while start < width:
            if start:
                stepper.start_row()
            for j in range(start, width):
                value = decider.score(stepper.step(i, j, out=decider.logits_at[j]), j)
                if kept is not None:
                    value = torch.where(kept[:, i, j], pixels[j], value)
                pixels[j].copy_(value)
                stepper.write_values(j, table, pixels[j])
            for j in decider.unclear_pixels(i, start, width, kept):
                if decider.settle(i, j, pixels[j]):
                    stepper.write_values(j, table, pixels[j])
                    start = j + 1
                    break
            else:
                return


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

    In steps: ``score`` takes a pixel's float32 draws and keeps their leads, in buffers for
    the row; ``unclear_pixels`` checks them, for one pixel (the naive sampler) or for the
    rest of a row at once (the fast one, which draws on and goes back when the reference
    overturns a draw); ``settle`` asks the reference for a pixel's close calls.
    """

    def __init__(self, model: PixelCNN, x: Tensor, temperature: float,
                 context: Tensor | None):
        self.model, self.x, self.temperature, self.context = model, x, temperature, context
        self.reference: PixelCNN | None = None
        self.pixels = self.draws = 0
        self.noise = self.noise_gap = None
        # Buffers for a row of pixels, made once (allocating costs as much as computing).
        like = model.net.head.out.weight.detach()
        n, levels, width = x.shape[0], model.levels, x.shape[-1]
        #: Per pixel of the row: each draw's lead (for two levels, first its score gap).
        self.lead = like.new_empty(width, n)
        self.logits = like.new_empty(width, n, levels)  # the logits the draws came from
        self.lead_at, self.logits_at = self.lead.unbind(0), self.logits.unbind(0)  # views
        self.magnitudes, self.largest = like.new_empty(width, n, levels), like.new_empty(width, n)
        if levels == 2:
            # Two levels: the draw is the sign of the score gap s0 - s1 = (g0 - g1) +
            # (l0 - l1) / T, one addmv, and the lead is its magnitude (no topk).
            self.over_t = like.new_tensor([1.0 / temperature, -1.0 / temperature])
            self.value = torch.empty(n, dtype=torch.bool, device=like.device)
        else:
            self.scores = like.new_empty(n, levels)
            self.top = like.new_empty(n, 2), torch.empty(n, 2, dtype=torch.long,
                                                         device=like.device)
            self.first, self.second = self.top[0].unbind(1)
            self.value = self.top[1][:, 0]
        self.threshold = 2 * (ROUNDING_TOLERANCE / temperature + SCORE_ROUNDING)

    def start_row(self, noise: Tensor) -> None:
        """The Gumbel noise ``[W, n, levels]`` of the row the samplers enter."""
        self.noise = noise
        if self.model.levels == 2:
            self.noise_gap = (noise[..., 0] - noise[..., 1]).unbind(0)  # W x [n]

    def score(self, logits: Tensor, j: int) -> Tensor:
        """The float32 draws ``[n]`` at pixel ``j`` of the row from ``logits`` ``[n, levels]``
        (a buffer, valid until the next call: bool for two levels, else int64), their
        leads kept for ``unclear_pixels``. A stepper may have written ``logits`` straight
        into ``logits_at[j]``."""
        if logits is not self.logits_at[j]:
            self.logits_at[j].copy_(logits)
        if self.model.levels == 2:
            gap = torch.addmv(self.noise_gap[j], logits, self.over_t, out=self.lead_at[j])
            # Level 1 scores higher (signbit: a cheaper gap < 0; a tie, -0.0 included,
            # has no lead and goes to the reference).
            return torch.signbit(gap, out=self.value)
        torch.add(self.noise[j], logits, alpha=1.0 / self.temperature, out=self.scores)
        torch.topk(self.scores, 2, dim=1, out=self.top)
        torch.sub(self.first, self.second, out=self.lead_at[j])
        return self.value

    def unclear_pixels(self, i: int, start: int, stop: int, kept: Tensor | None) -> list[int]:
        """The pixels of ``start..stop-1`` (scored since) with a draw too close to call, in
        order.

        Unclear: lead <= 2 (tol (1 + m) / T + s), as lead - (2 tol / T) m <= 2 (tol / T + s),
        with m = max |logit| of the sample. Known pixels (``kept``, completion) are not drawn.
        """
        lead, row = self.lead[start:stop], slice(start, stop)
        if self.model.levels == 2:
            lead.abs_()
        magnitudes = torch.abs(self.logits[row], out=self.magnitudes[row])
        largest = torch.amax(magnitudes, dim=-1, out=self.largest[row])
        lead.sub_(largest, alpha=2 * ROUNDING_TOLERANCE / self.temperature)
        if kept is not None:
            lead.masked_fill_(kept[:, i, row].t(), float("inf"))
        unclear = (lead <= self.threshold).any(dim=1).nonzero().flatten()
        return [start + k for k in unclear.tolist()]

    def settle(self, i: int, j: int, values: Tensor) -> bool:
        """Decide pixel ``j``'s close calls (``unclear_pixels``) by the reference, in
        ``values`` ``[n]``; whether that changed any of them."""
        self.pixels += 1
        t, gumbel, changed = self.temperature, self.noise[j], False
        for b in (self.lead[j] <= self.threshold).nonzero().flatten().tolist():
            self.draws += 1
            exact = self.reference_logits(b, i, j) / t + gumbel[b].to(torch.float64)
            draw = int(exact.argmax())
            changed = changed or draw != int(values[b])
            values[b] = draw
        return changed

    def reference_logits(self, b: int, i: int, j: int) -> Tensor:
        """Image ``b``'s logits at ``(i, j)`` in float64 (rows below ``i`` cannot matter)."""
        if self.reference is None:
            self.reference = self.model.float64_copy()
        context = None if self.context is None else self.context[b : b + 1]
        # Up to the pixel, zeros after it: the same input whichever sampler asks (the fast
        # one may hold draws to the right that it is about to redo, which cannot matter).
        rows = self.x[b : b + 1, :, : i + 1].clone()
        rows[..., i, j:] = 0
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

