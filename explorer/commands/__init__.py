"""Subcommands of the `specdec` console script, one module each (see explorer/cli.py)."""
