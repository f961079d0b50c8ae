"""Where ``ZooModel`` lived before zoo's modules moved into rooms: plugins import
``zoo.plugin`` now. Kept so that a plugin written against the old import still works."""

import warnings

from zoo.plugin.model import ZooModel, check_completion, check_continuous, check_discrete, check_sampling  # noqa: F401

warnings.warn("zoo.model has moved: import from zoo.plugin instead", DeprecationWarning,
              stacklevel=2)
