"""``python -m zoo`` runs the command line (also what torchrun launches)."""

from zoo.cli.commands import main

main()
