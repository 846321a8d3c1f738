"""``python -m tabpriv`` runs the command-line interface."""

from tabpriv.cli import main

main()
