"""Run a ``zoo`` command in this process and check its exit status: the one helper the
command-line tests share (``faultkit.run_zoo`` runs one in a subprocess)."""

from __future__ import annotations

from click.testing import CliRunner, Result

from zoo.cli.commands import cli


def run(runner: CliRunner, *args: object, code: int = 0) -> Result:
    """``zoo ARGS`` through ``runner``; its exit status must be ``code``."""
    result = runner.invoke(cli, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result
