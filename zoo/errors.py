"""The exceptions zoo raises. Every one carries a message meant for a person.

The command line prints ``str(error)`` on one line and exits non-zero; nothing else.
"""

from __future__ import annotations


class ZooError(Exception):
    """Base class of every error zoo raises on purpose."""


class ConfigError(ZooError, ValueError):
    """A configuration (family config, recipe, catalog entry, artifact config) is invalid."""


class CatalogError(ZooError):
    """The catalog (registry.yaml or a plugin's entries) is malformed."""


class NotFoundError(ZooError, LookupError):
    """A model, family, dataset or file that was asked for does not exist."""


class PluginError(ZooError):
    """A plugin failed to load or registered something invalid."""


class ArtifactError(ZooError):
    """An artifact directory is missing, incomplete, corrupted or does not match its config."""


class DataError(ZooError):
    """A dataset cannot be loaded (missing files, wrong format)."""


class TrainingError(ZooError):
    """Training cannot go on (for example, the loss became non-finite)."""


class HubError(ZooError):
    """Talking to the Hugging Face Hub failed; the message says what to do."""


class StoreError(ZooError, OSError):
    """The store (or an output path) cannot be written: the message names the path and
    what to do (free space, permissions, a shorter ``ZOO_HOME``)."""


class Stopped(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) arrived; ``signum`` says which. Like Ctrl-C it
    is not an error of the program: every ``finally`` cleans up, and the command line exits
    with 128 + ``signum``."""

    def __init__(self, signum: int) -> None:
        import signal

        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The stop (Ctrl-C, or a :class:`Stopped` signal) that ``exc`` is or was raised from.

    A stop does not always arrive as itself. Raised while a pybind11 extension module
    initialises, it comes out as ``ImportError: initialization failed`` caused by the stop;
    torch.compile wraps what its backend raised in ``BackendCompilerFailed``; a library's
    cleanup may fail while the stop unwinds. Each is a stop all the same: the ``__cause__``
    and ``__context__`` chains of ``exc`` are searched for it.
    """
    pending: list[BaseException | None] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        pending += [current.__cause__, current.__context__]
    return None
