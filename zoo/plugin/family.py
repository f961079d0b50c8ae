"""What a model family is: a named recipe for building, scoring, sampling and training models.

A plugin subclasses ``Family``, sets ``name``, ``data_kind`` and ``Config`` (a frozen
dataclass, see ``zoo.config``) and implements ``create``. This module imports no torch so
that registering a family stays cheap; implementations import torch inside ``create``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from zoo import config as _config
from zoo.config import check_shape_field  # noqa: F401  (re-exported for plugins)

if TYPE_CHECKING:
    from zoo.plugin.model import ZooModel

DataKind = Literal["continuous", "discrete"]


class Family:
    """Base class of a model family.

    Class attributes to set:

    - ``name``: unique family name, used in catalog entries and artifacts.
    - ``data_kind``: ``"continuous"`` (float32 ``[B, D]``) or ``"discrete"`` (int64 values in
      ``0..levels-1`` of shape ``[B, *shape]``).
    - ``Config``: a frozen dataclass with a ``shape`` field (and ``levels`` for discrete
      data); every other field has a default.
    - ``description``: one line shown by ``zoo plugins``.
    - ``state_buffers``: ``fnmatch`` patterns of the buffers that are learned state
      (``"*.running_mean"``). Every other buffer (masks, orderings, index lists) must follow
      from the config alone: loading rebuilds the model from its config and refuses an
      artifact whose stored buffers differ from the rebuilt ones.
    - ``autoregressive``: whether the conformance kit checks causality and exact
      completion (``zoo.testing``'s autoregressive protocol). ``None``, the default, means
      "if the data are discrete"; a discrete family that is not autoregressive (a mixture)
      sets ``False``.
    - ``contexts``: the kinds of context models of the family can be conditioned on,
      ``("label", "vector")`` or a part of it (``zoo.plugin.context``); empty (the default):
      the family is unconditional. Its ``Config`` then inherits ``ContextFields``.
    - ``added_config_keys``: config keys added after artifacts of the family were first
      written, each with the value an artifact written before it existed meant. An
      artifact's ``config.json`` lists every key, so a missing one dates the file; a new
      default (``head: auto``) then never changes what an old artifact is.
    """

    name: ClassVar[str]
    data_kind: ClassVar[DataKind]
    Config: ClassVar[type]
    description: ClassVar[str] = ""
    state_buffers: ClassVar[tuple[str, ...]] = ()
    autoregressive: ClassVar[bool | None] = None
    contexts: ClassVar[tuple[str, ...]] = ()
    added_config_keys: ClassVar[Mapping[str, Any]] = {}

    def parse_config(self, raw: Mapping[str, Any] | Any, *, where: str | None = None) -> Any:
        """Validate a raw mapping (or pass through a ``Config``) before anything is allocated."""
        return _config.parse(self.Config, raw, where=where or f"{self.name} config")

    def parse_stored_config(self, raw: Mapping[str, Any], *, where: str | None = None) -> Any:
        """``parse_config`` for the config of a stored artifact: keys it predates take the
        values of ``added_config_keys``, not today's defaults."""
        if isinstance(raw, Mapping):
            raw = {**{k: v for k, v in self.added_config_keys.items() if k not in raw}, **raw}
        return self.parse_config(raw, where=where)

    def upgrade_tensors(self, config: Any, tensors: dict[str, Any]) -> dict[str, Any]:
        """The tensors of a stored artifact of ``config``, in the layout that ``create(config)``
        loads today. A family that renames, stacks or packs its tensors converts the layouts
        its older versions wrote here (told apart by their names), so that their artifacts
        keep loading; the result is then checked like any file. Default: as stored."""
        return tensors

    def build(self, config: Mapping[str, Any] | Any) -> ZooModel:
        """A freshly initialised model for ``config`` (a mapping or a ``Config``)."""
        cfg = self.parse_config(config)
        model = self.create(cfg)
        model.family = self.name
        model.config = cfg
        return model

    def create(self, config: Any) -> ZooModel:
        """Build the model from a validated config. Subclasses implement this."""
        raise NotImplementedError(f"family {self.name!r} does not implement create()")

    def train(self, model: ZooModel, dataset: Any, recipe: Any, **kwargs: Any) -> Any:
        """Fit ``model`` on ``dataset`` following ``recipe`` (a ``zoo.Recipe``) if the family
        trains differently from the core's generic maximum-likelihood trainer. The default
        returns ``NotImplemented``: ``zoo pull`` and ``zoo train`` then run the generic
        trainer, ``zoo.training.loop.maximise_likelihood(model, dataset, recipe, **kwargs)``, which needs only
        ``log_prob`` (``zoo.training.loop.train_model`` decides). The family class sits below
        the trainer, so a plugin imports no training code unless it overrides this."""
        return NotImplemented

    def inert_config_keys(self, config: Any) -> Mapping[str, str]:
        """Config keys that may leave the model ``create(config)`` builds unchanged, each with
        the reason: a training-only setting (``dropout``), or a key this config does not use
        (a seed for a random ordering when the ordering is fixed). The conformance kit's
        ``config_keys`` check requires every other key to change the model. Default: none.
        """
        return {}

    def data_kind_of(self, config: Mapping[str, Any] | Any) -> DataKind:
        """The kind of data models of ``config`` take and sample: ``data_kind``, except for a
        continuous family that models discrete levels by dequantization (``"discrete"``)."""
        return self.data_kind

    def likelihood_bound(self, config: Mapping[str, Any] | Any) -> bool:
        """Whether the NLL that models of ``config`` report on their data is an upper bound
        (a continuous density on discrete data, dequantized) rather than exact. Shown as
        "≤" wherever the number appears; needs no torch."""
        return False

    def config_dict(self, config: Any) -> dict[str, Any]:
        """The JSON form of a config, as stored in an artifact's ``config.json``."""
        return _config.to_dict(config)

    def __repr__(self) -> str:
        return f"<zoo family {self.name!r} ({self.data_kind})>"
