"""``python -m umsn_cli`` runs the CLI (also under ``torchrun``)."""

from umsn_cli.cli import main

main()
