"""The base class of every zoo model.

A ``ZooModel`` is an ``nn.Module`` that knows its family and config and scores and samples
data directly: ``model.log_prob(x)`` and ``model.sample(n, ...)``. Everything the model needs
(masks, permutations) is a registered buffer, so its ``state_dict`` is the whole model.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

if TYPE_CHECKING:
    from zoo.data.source import Examples

from zoo.checks import (  # noqa: F401  (re-exported: where plugins found them)
    check_completion,
    check_continuous,
    check_discrete,
    check_sampling,
)
from zoo.plugin.context import ContextSpec
from zoo.plugin.context_input import check_context


class ZooModel(nn.Module):
    """A model of a zoo family. Subclasses implement ``log_prob`` and ``sample``."""

    family: str = ""
    config: Any = None
    #: True when ``log_likelihood`` of the model's data is a lower bound on ``log p``, not
    #: exact: a continuous density fitted to discrete data through dequantization.
    likelihood_bound: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "log_prob" in cls.__dict__ and not getattr(cls.log_prob, "_zoo_no_silent_nan", False):
            cls.log_prob = contextual_log_prob(_no_silent_nan(cls.__dict__["log_prob"]))
        for name in ("sample", "sample_naive"):
            if name in cls.__dict__ and not getattr(cls.__dict__[name], "_zoo_finite", False):
                setattr(cls, name, contextual_sample(_finite_samples(cls.__dict__[name])))

    def log_prob(self, x: Tensor, context: Any = None) -> Tensor:
        """Exact log-probability of each example, in nats: float tensor of shape ``[B]``.

        A conditional model (``context_spec``) gives ``log p(x | context)``: ``context`` is
        int64 labels ``[B]`` or floats ``[B, d]``, or one context for every example. A
        label-conditional model called without one gives the exact marginal
        ``logsumexp_y log p(x | y) + log p(y)`` over its training data's class frequencies.
        The family's own ``log_prob`` receives the context already checked (and no
        ``context`` argument at all when the model is unconditional).
        """
        raise NotImplementedError

    @property
    def context_spec(self) -> ContextSpec:
        """What the model is conditioned on (from its config's ``classes``/``context``)."""
        # Read on every log_prob: made once per config object (configs are frozen).
        cached = self.__dict__.get("_context_spec")
        if cached is None or cached[0] is not self.config:
            cached = self.__dict__["_context_spec"] = (self.config, ContextSpec.of(self.config))
        return cached[1]

    def class_log_prior(self) -> Tensor:
        """``log p(y)`` of each class ``[K]``: the training labels' frequencies, which a
        label-conditional model keeps in ``model.context_input`` (``ContextInput``)."""
        module = getattr(self, "context_input", None)
        if module is None or not hasattr(module, "log_prior"):
            raise ValueError(f"{self.family or type(self).__name__} keeps no class frequencies "
                             "(a label-conditional model holds a ContextInput at "
                             "model.context_input)")
        return torch.log_softmax(module.log_prior, 0)  # normalised whatever is stored

    def initialize_from_data(self, rows: Examples) -> None:
        """Called by the generic trainer once, before the first step, with the rows it will
        train on (its training split, read batch by batch with ``rows.batches(n)``): for a
        data-dependent start (a standardizing layer, ActNorm). A resumed run then restores
        the checkpoint's weights over it. Default: nothing."""

    def log_likelihood(self, x: Tensor, *, context: Any = None, samples: int = 1,
                       generator: torch.Generator | None = None) -> Tensor:
        """The log-likelihood of data of the model's dataset, in nats, ``[B]``: what the
        trainer maximises and evaluation reports.

        For most models it is ``log_prob(x)``, exact. A continuous model of discrete data
        (``likelihood_bound``) returns a lower bound instead: the log-density at ``x + u``
        for ``u ~ U[0, 1)``, or the importance-weighted bound over ``samples`` such draws,
        drawn on ``generator``. ``context`` as for ``log_prob``.
        """
        return self.log_prob(x) if context is None else self.log_prob(x, context=context)

    def sample(
        self,
        n: int,
        *,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
        given: Tensor | None = None,
        mask: Tensor | None = None,
        context: Any = None,
    ) -> Tensor:
        """Draw ``n`` samples.

        ``temperature`` scales the spread (1 is the model itself); ``generator`` makes the
        draw reproducible. Autoregressive families also complete partly known inputs: where
        ``mask`` is true, the sample keeps the value of ``given``. A conditional model draws
        from ``p(x | context)``: one context for all ``n`` samples, or one per sample; a
        label-conditional model called without one draws each sample's label from its
        class frequencies first.
        """
        raise NotImplementedError

    # --- the Hugging Face Hub's model methods (PyTorchModelHubMixin's names; see docs/hub.md)

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike, revision: str | None = None, *,
                        device: Any = "cpu", offline: bool = False) -> ZooModel:
        """Load a model: a catalog name, ``ORG/REPO`` or ``hf-hub:ORG/REPO[@REV]`` on the
        Hub (``revision`` a branch, tag or commit), or an artifact folder. On a family's
        class (``RealNVP.from_pretrained``) a model of another family is refused."""
        from zoo.api import load_pretrained

        return load_pretrained(cls, name_or_path, revision=revision, device=device,
                               offline=offline)

    def save_pretrained(self, save_directory: str | os.PathLike, *, overwrite: bool = False,
                        **meta: Any) -> Path:
        """Write the model as a zoo artifact folder (``zoo.save``): config.json,
        model.safetensors and the model card."""
        from zoo.api import save

        return save(self, save_directory, overwrite=overwrite, **meta)

    def push_to_hub(self, repo_id: str, *, revision: str | None = None, private: bool = False,
                    commit_message: str | None = None, token: str | None = None) -> Any:
        """Publish the model to the Hub repository ``repo_id`` as ``zoo push`` does (the
        artifact is written to a temporary folder first)."""
        from zoo.api import push_model

        return push_model(self, repo_id, revision=revision, private=private,
                          message=commit_message, token=token)

    @property
    def device(self) -> torch.device:
        """The device of the model's first parameter (or buffer); CPU for an empty model."""
        for t in self._parameters.values():  # parameters() yields these first: found cheaply
            if t is not None:
                return t.device
        for t in self.parameters():
            return t.device
        for t in self.buffers():
            return t.device
        return torch.device("cpu")


def _finite_samples(sample: Any) -> Any:
    """Wrap a family's ``sample`` so that samples that are not finite numbers (a temperature
    so high that they overflow) are a ValueError, not NaN or inf handed to the caller."""

    @functools.wraps(sample)
    def checked(self: ZooModel, n: int, *args: Any, **kwargs: Any) -> Tensor:
        out = sample(self, n, *args, **kwargs)
        if isinstance(out, Tensor) and out.is_floating_point() and not bool(
                torch.isfinite(out).all()):
            temperature = kwargs.get("temperature", 1.0)
            raise ValueError(f"temperature {temperature:g} gives samples that are not finite "
                             "numbers (they overflow); use a smaller temperature")
        return out

    checked._zoo_finite = True  # type: ignore[attr-defined]
    return checked


def _no_silent_nan(log_prob: Any) -> Any:
    """Wrap a family's ``log_prob`` so that, outside training, a NaN result is a ValueError.

    Input checks catch NaN, inf and values outside the data's range; this catches inputs
    that pass them but overflow inside the model (a coordinate of 3e38 in a flow). A training
    step (train mode with autograd on) skips it: the trainer checks the loss itself.
    """

    @functools.wraps(log_prob)
    def checked(self: ZooModel, x: Tensor, *args: Any, **kwargs: Any) -> Tensor:
        out = log_prob(self, x, *args, **kwargs)
        training = self.training and torch.is_grad_enabled()
        if not training and isinstance(out, Tensor) and out.is_floating_point():
            bad = int(torch.isnan(out).sum())
            if bad:
                largest = float(x.abs().max()) if isinstance(x, Tensor) and x.numel() else 0.0
                raise ValueError(
                    f"log_prob is NaN for {bad} of {out.numel()} examples: the input is outside "
                    f"what this model can score (largest |value| {largest:.3g})"
                )
        return out

    checked._zoo_no_silent_nan = True  # type: ignore[attr-defined]
    return checked


def contextual_log_prob(log_prob: Any) -> Any:
    """Wrap a family's ``log_prob`` with the context contract (see ``ZooModel.log_prob``):
    refuse a context the model does not take or a missing one it needs, check it, and give
    the marginal over the classes when a label model gets none."""

    @functools.wraps(log_prob)
    def conditioned(self: ZooModel, x: Tensor, *args: Any, context: Any = None,
                    **kwargs: Any) -> Tensor:
        spec = self.context_spec
        if not spec and context is None:
            return log_prob(self, x, *args, **kwargs)
        rows = x.shape[0] if isinstance(x, Tensor) and x.dim() else 1
        checked = check_context(spec, context, rows, self.device)
        if checked is not None:
            return log_prob(self, x, *args, context=checked, **kwargs)
        prior = self.class_log_prior()
        parts = [log_prob(self, x, *args, context=torch.full((rows,), k, dtype=torch.long,
                                                               device=self.device), **kwargs)
                 + prior[k] for k in range(spec.size)]
        return torch.logsumexp(torch.stack(parts), 0)

    conditioned._zoo_no_silent_nan = True  # type: ignore[attr-defined]
    return conditioned


def contextual_sample(sample: Any) -> Any:
    """Wrap a family's ``sample`` with the context contract: a label model without a label
    draws one per sample from its class frequencies; a single context applies to every
    sample; the family receives the checked contexts ``[n]`` or ``[n, d]``."""

    @functools.wraps(sample)
    def conditioned(self: ZooModel, n: int, *args: Any, context: Any = None,
                    **kwargs: Any) -> Tensor:
        spec = self.context_spec
        if not spec and context is None:
            return sample(self, n, *args, **kwargs)
        check_sampling(n, kwargs.get("temperature", 1.0))
        checked = check_context(spec, context, n, self.device)
        if checked is None:  # a label model: the label first, from p(y)
            generator = kwargs.get("generator")
            prior = self.class_log_prior().detach().double().exp()
            where = generator.device if generator is not None else prior.device
            checked = torch.multinomial(prior.to(where), n, replacement=True,
                                        generator=generator).to(self.device)
        return sample(self, n, *args, context=checked, **kwargs)

    conditioned._zoo_finite = True  # type: ignore[attr-defined]
    return conditioned
