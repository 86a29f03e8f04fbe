"""Every command's ``--help`` reads at 80 columns: no line longer, the exit-code table and examples included."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from trader.cli import docs
from trader.cli.main import cli

COMMANDS = [path for path, _ in docs.walk(cli)]


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "trader")
def test_help_fits_80_columns(path: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    result = CliRunner().invoke(cli, [*path, "--help"], terminal_width=80)
    assert result.exit_code == 0, result.output
    long = [line for line in result.output.splitlines() if len(line) > 80]
    assert not long, long
