"""``python -m zoo`` runs the command line (also what torchrun launches)."""

from zoo.cli import main

main()
