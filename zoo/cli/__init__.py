"""The ``zoo`` command: click commands (``commands``), what a command sets for its process
(``process``: stop signals, threads), and the files that ``zoo sample`` writes
(``sample_files``, ``completion_files``)."""

from zoo.cli.commands import cli, main

__all__ = ["cli", "main"]
