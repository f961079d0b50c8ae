"""Commands that set up the user's surroundings rather than use a model: the shell
completion script (``zoo completion``) and a new plugin package (``zoo plugin new``).
``zoo.cli.commands`` adds them to the ``zoo`` group."""

from __future__ import annotations

from pathlib import Path

import click

from zoo.cli.completion_names import SHELLS


@click.command()
@click.argument("shell", type=click.Choice(SHELLS))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL (bash, zsh or fish).

    Catalog names, installed families and stored artifacts complete wherever a command takes
    a NAME. bash: `eval "$(zoo completion bash)"` in ~/.bashrc; zsh: the same in ~/.zshrc;
    fish: `zoo completion fish > ~/.config/fish/completions/zoo.fish`.
    """
    from zoo.cli.completion_names import script

    click.echo(script(click.get_current_context().find_root().command, shell))


@click.group("plugin")
def plugin_group() -> None:
    """Write a new plugin package (`zoo plugins` lists the installed ones)."""


@plugin_group.command("new")
@click.argument("name")
@click.option("--kind", type=click.Choice(["vector", "image"]), default="vector",
              show_default=True, help="vector: a diagonal Gaussian over vectors; image: "
                                      "independent categoricals per pixel.")
@click.option("--dir", "where", type=click.Path(file_okay=False, path_type=Path),
              default=Path("."), show_default=True, help="Where the package folder goes.")
def plugin_new(name: str, kind: str, where: Path) -> None:
    """Write zoo-NAME/, an installable plugin with a working model, a catalog entry
    (NAME-moons or NAME-digits) and a test that runs the conformance kit:
    `pip install -e ./zoo-NAME && python -m pytest zoo-NAME && zoo pull NAME-moons`."""
    from zoo.cli.scaffold import new_plugin

    click.echo(str(new_plugin(name, kind, where)))
