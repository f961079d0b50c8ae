"""Where ``Family`` lived before zoo's modules moved into rooms: plugins import
``zoo.plugin`` now. Kept so that a plugin written against the old import still works."""

import warnings

from zoo.plugin.family import DataKind, Family, check_shape_field  # noqa: F401

warnings.warn("zoo.family has moved: import from zoo.plugin instead", DeprecationWarning,
              stacklevel=2)
