"""The conformance kit: does a family keep the zoo's contract? (``check_estimator`` for likelihoods)

Run every check and get one error naming each check that failed and why::

    from zoo.testing import check_family
    from zoo_realnvp.family import RealNVPFamily as MyFamily    # your zoo.Family subclass

    report = check_family(MyFamily(), config={"shape": [2]})     # raises ConformanceError
    print(report.summary())

or one pytest test per check (a check that does not apply to the family is skipped)::

    import pytest
    from zoo.testing import family_checks

    @pytest.mark.parametrize("check", family_checks(MyFamily(), {"shape": [2]}), ids=str)
    def test_conformance(check):
        check()

or from a shell: ``python -m zoo.testing FAMILY [--config JSON]`` (an installed family by name).

The checks
==========

Every family:

- ``contract``: ``name``, ``data_kind``, a frozen dataclass ``Config`` with ``shape`` (and
  ``levels`` for discrete data), an implemented ``create``.
- ``config_roundtrip``: the config survives JSON and parses back equal.
- ``config_validation``: unknown keys, a missing ``shape``, wrong types and absurd sizes are
  rejected by ``parse_config`` with a ``ValueError`` (``zoo.errors.ConfigError``), before any
  allocation.
- ``build``: ``build(config)`` gives a ``ZooModel`` that knows its family and config, with
  finite tensors.
- ``log_prob``: float ``[B]``, finite, in nats (at most 0 for discrete data), the same for an
  example alone as inside a batch.
- ``log_prob_gradients``: ``-log_prob(x).mean()`` back-propagates finite, non-zero gradients
  into the parameters (what the generic trainer needs).
- ``sample``: shape ``[n, *shape]``; float32 (continuous) or int64 in ``0..levels-1``
  (discrete); the same generator seed gives the same samples; temperatures work.
- ``bad_input``: wrong shape, wrong dtype, out-of-range values, NaN and infinities make
  ``log_prob`` raise ``ValueError``; so do a non-positive sample count and temperature.
- ``derived_buffers``: every buffer the family does not list in ``state_buffers`` is the
  same in two builds of the config (global RNG in two states), and every listed pattern
  matches a buffer. Loading rebuilds these buffers and refuses a file whose copy differs.
- ``save_load``: ``zoo.save`` then ``zoo.load`` (in a temporary folder, with the global
  RNG in another state) gives bit-identical ``log_prob`` and bit-identical samples for the same
  generator. This is what catches a mask or ordering kept as a plain attribute instead of a
  registered buffer: the loaded model draws a new one.

The mistakes plugin authors really make (every family):

- ``log_prob_keeps_input``: ``log_prob`` leaves the tensor it is given unchanged (an
  in-place ``x -= mean`` fails it with "log_prob changed its input").
- ``samples_detached``: ``sample()`` called with autograd on returns a tensor that does not
  require grad (one that does keeps the sampling graph alive and breaks ``.numpy()``).
- ``temperature``: 2000 samples at temperatures 0.1, 1 and 10 (same generator) differ, and
  their mean ``log_prob`` falls as the temperature rises, significantly from 0.1 to 10;
  identical samples (temperature validated, then ignored), a significant rise (the wrong
  way round) or no significant fall fail. A uniform model (every sample equally probable)
  passes with a note.
- ``state_after_reload``: a model that has scored data, saved and reloaded, samples like the
  original before it scores anything, scores *other* data identically, and has the same
  parameters, buffers (persistent or not) and tensor attributes. This catches state set
  after construction that the ``state_dict`` lacks, such as a data-dependent initialisation
  in a ``persistent=False`` buffer, which scoring the same data would rebuild identically.
- ``config_keys``: for every config key but ``shape`` and ``levels``, a config that differs
  only there (another ``Literal`` option, the other bool, an integer +-1 or +-2, a float at
  its bounds or doubled, a list one longer) builds a model with other tensors, ``log_prob``
  or samples. Keys that legitimately change nothing in a given config (training-only
  settings like dropout, a seed the config does not use) are declared by the family's
  ``inert_config_keys(config)``, with the reason.
- ``normaliser_in_any_dimension``: the model is normalised in a second shape (the last size
  changed, e.g. ``[5]`` for ``[2]``) and, for continuous data, in the config's own: an
  importance-sampling estimate (8000 draws of a Gaussian fitted to the samples, variance
  doubled) must be 1 within 5 standard errors + 0.01, enumeration (discrete) within 1e-5.
  This catches a constant that is only right in one dimension (``log(2*pi)`` written for
  ``D = 2``), which grid integration in ``D <= 2`` cannot see.

Discrete families (levels ``C``, ``D`` positions; the config must be tiny, ``C**D <= 65536``):

- ``normalisation``: the probabilities of all ``C**D`` inputs, by enumeration, sum to 1
  within 1e-5.
- ``samples_match_log_prob``: a chi-square test of 4000 samples against the enumerated
  probabilities (p > 1e-4, fixed seeds, so it is deterministic).
- ``causality``: the autoregressive protocol below, checked by gradients and by perturbation.
- ``completion``: ``sample(n, given=x, mask=known)`` keeps every known value, and for a known
  prefix (in the model's order) draws the rest from the exact conditional (chi-square).

Continuous families:

- ``invertibility`` (flows): ``invert(forward(x)[0]) == x`` and ``forward(invert(z))[0] == z``.
- ``log_det`` (flows, ``D <= 4``): the log-determinant ``forward`` returns equals
  ``torch.linalg.slogdet`` of the autograd Jacobian, in float64.
- ``normalisation`` (``D <= 8``): the density integrates to 1 within 1% on a grid chosen from
  the range of the model's samples (``D <= 2``), or within 2% (plus 3 standard errors) by
  importance sampling from Gaussians around the model's samples (``2 < D <= 8``: a
  ``[1, 2, 2]`` image flow).
- ``samples_match_log_prob`` (``D <= 2``): a chi-square test of 4000 samples against the
  probabilities of grid cells.

Conditional families (``Family.contexts`` not empty; ``zoo.testing.conditional``): the kit
builds the config under test with ``classes: [a, b, c]`` (labels) and with ``context: [u, v]``
(vectors; the contexts tried are ``[1.5, -1]``, ``[-1, 1.5]`` and ``[0, 0]``), nudges it as
below, then moves its parameters by gradient ascent until two contexts' distributions are
at least 0.3 nats apart (mean KL: exact by enumeration for a tiny discrete config, from
samples otherwise), so that a sampler blind to the context cannot pass by accident:

- ``context_matters``: ``log_prob`` of the data differs between the contexts (on the nudged
  model, before the ascent); a model that ignores its context fails.
- ``context_normalisation``: ``normalisation`` above for every context tried and for a label
  model's marginal ``log_prob(x)`` (no context); by importance sampling (``D > 2``), for
  the first context of each kind only.
- ``context_samples``: 1000 samples per context score higher under their own context than
  under the others: the mean of ``log p(x | own) - mean log p(x | other)`` must have a
  z-score of at least 5. For a sampler that ignores the context this mean is 0 in
  expectation (it passes with probability about 3e-7); a real model's z is 15 or more.
- ``context_samplers`` (autoregressive): ``sample`` and ``sample_naive`` draw identical
  samples from the same generator state, for every context and for one context per sample.
- ``context_causality`` (discrete autoregressive): ``causality`` with a context passed to
  ``conditional_logits(x, context=...)``; a context term computed from the input after the
  masks leaks later positions and fails here (without a context it is invisible).
- ``context_completion`` (discrete autoregressive): ``completion``'s exact-conditional test
  in one context of each kind: completions follow ``p(unknown | known, context)``.

A check that does not apply (a flow check for a mixture model, grid integration in 5
dimensions) is reported as ``not applicable`` with the reason, never as passed.

Before the checks the kit nudges every floating-point parameter by noise of standard
deviation ``perturb / sqrt(fan_in)`` (``perturb=0.1``; biases and other 1-d parameters by
``perturb``), so every layer's output moves by about ``perturb``: flows usually start as the
identity (zero-initialised output layers), and a log-det check on the identity proves
nothing. A nudged fresh model is close to independent across positions, and on such a model
a sampler that ignores earlier positions passes a chi-square test. So before
``samples_match_log_prob`` and ``completion`` the kit makes a discrete model strongly
dependent (``zoo.testing.dependence``): gradient ascent on the parameters until the total
variation between the joint distribution and the product of its marginals is at least
``min_dependence`` (0.2); if it cannot, those checks fail and say what to pass (a config
whose model can express dependence, or ``min_dependence=0`` for the weaker test).
Everything runs under a fixed seed, inside
``torch.random.fork_rng``, so the caller's random state is untouched.

Protocols the kit relies on
===========================

**Autoregressive protocol** (every discrete family, unless its ``Family`` class sets
``autoregressive = False``, in which case ``causality`` and ``completion`` are not
applicable; a continuous family may opt in with ``autoregressive = True`` for ``completion``):

``model.conditional_logits(x) -> Tensor[B, C, *shape]``
    (sizes of 1 may be left out: ``[B, C, H, W]`` for images of shape ``[1, H, W]``.)
    The logits of every position's conditional distribution over its ``C`` levels, each
    computed only from the positions before it in the model's order. ``x`` is either int64
    levels ``[B, *shape]`` or a float one-hot tensor ``[B, C, *shape]`` (levels on dim 1).
    The kit passes a one-hot tensor with ``requires_grad`` to check causality by gradients,
    so the float path must be differentiable: start with
    ``h = x if x.is_floating_point() else F.one_hot(x, C).movedim(-1, 1).float()`` and use
    ``h``: an embedding is then ``torch.einsum("bc...,ce->be...", h, weight)``, a scalar input
    is ``(h * torch.arange(C).view(1, C, 1, ...)).sum(1)``. ``log_prob(x)`` must equal
    ``log_softmax(conditional_logits(x), 1)`` gathered at ``x`` and summed over positions.
    (The name is specific on purpose: a model's own ``logits`` helper can keep whatever
    signature suits it.)
``model.order() -> LongTensor[D]`` (optional; default: raster order ``arange(D)``)
    The flat positions (indices into ``x[0].flatten()``) in generation order.
``model.ensemble_size: int`` (optional; default 1)
    An order- or connectivity-agnostic ensemble of ``K`` autoregressive models (MADE with
    ``K`` masks) takes the member as a second argument, ``conditional_logits(x, k)`` and
    ``order(k)`` for ``k in range(K)``; its ``log_prob`` must be
    ``logsumexp_k(log p_k(x)) - log K``. The kit checks causality of every member and, for
    ensembles, skips the exact-conditional part of ``completion``.

**Flow protocol** (continuous families whose model has ``invert``): ``model(x)`` (that is,
``forward``) returns ``(z, logdet)`` with ``z`` of shape ``[B, D]`` and ``logdet`` ``[B]``,
the log absolute determinant of ``dz/dx``; ``model.invert(z)`` returns ``x``. Models without
``invert`` (a mixture, an autoregressive density) skip ``invertibility`` and ``log_det``.
"""


from zoo.testing.cli import main  # the shell form; see __main__.py
from zoo.testing.harness import (
    ConformanceError,
    NotApplicable,
    Report,
    Result,
    default_config,
)
from zoo.testing.protocols import Autoregressive, Flow
from zoo.testing.suite import CHECKS, Check, check_family, family_checks

__all__ = [
    "main",
    "Check",
    "ConformanceError",
    "NotApplicable",
    "Report",
    "Result",
    "check_family",
    "family_checks",
    "default_config",
    "CHECKS",
    "Autoregressive",
    "Flow",
]
