"""``python -m trader.cli``: the ``trader`` command, for a job that has the interpreter but not the script."""

from trader.cli.main import cli

cli()
