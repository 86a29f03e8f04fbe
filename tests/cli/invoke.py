"""Running the `trader` command in-process for the CLI tests: the result, its JSON, its refusals."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from click.testing import CliRunner, Result

from trader.cli.main import cli


def trader(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=stdin, catch_exceptions=False)


def ok(*args: str) -> Result:
    result = trader(*args)
    assert result.exit_code == 0, result.output
    return result


def data(*args: str) -> Any:
    """Run a command with --json and return its parsed output (numbers with a fraction as exact Decimals)."""
    return json.loads(ok("--json", *args).stdout, parse_float=Decimal)


def refused(code: int, *args: str) -> str:
    """Run a command that must fail with exit ``code``; return its stderr (the one-line error)."""
    result = trader(*args)
    assert result.exit_code == code, result.output
    return result.stderr
