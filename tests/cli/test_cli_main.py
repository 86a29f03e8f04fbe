"""The ``trader`` group: exit codes documented in --help, TraderError -> exit code + one line on stderr."""

from __future__ import annotations

import click
from click.testing import CliRunner

from trader.cli.main import TraderGroup, cli
from trader.cli.stack import format_duration
from trader.errors import EXIT_CODES, ConfigError, NotFound


def test_help_lists_every_exit_code() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code, exit_code in EXIT_CODES.items():
        assert f"{exit_code:<3} {code}:" in result.output
    for command in ("up", "down", "status", "pycron"):
        assert command in result.output


def test_trader_errors_become_their_exit_code_with_one_line() -> None:
    @click.group(cls=TraderGroup)
    def group() -> None:
        pass

    @group.command()
    def missing() -> None:
        raise NotFound("no job 'x'")

    @group.group()
    def nested() -> None:
        pass

    @nested.command()
    def broken() -> None:
        raise ConfigError("bad file:\n  line 3")

    result = CliRunner().invoke(group, ["missing"])
    assert (result.exit_code, result.stderr) == (4, "error (not_found): no job 'x'\n")
    result = CliRunner().invoke(group, ["nested", "broken"])
    assert (result.exit_code, result.stderr) == (2, "error (config): bad file: line 3\n")


def test_format_duration() -> None:
    assert [format_duration(s) for s in (None, 5.9, 125, 7260, 90000)] == [
        "-",
        "5s",
        "2m05s",
        "2h01m",
        "1d01h",
    ]


def test_ctrl_c_in_a_command_exits_130_and_a_declined_confirmation_1() -> None:
    @click.group(cls=TraderGroup)
    def group() -> None:
        pass

    @group.command()
    def waits() -> None:
        raise KeyboardInterrupt

    @group.command()
    def asks() -> None:
        click.confirm("Send?", abort=True)

    interrupted = CliRunner().invoke(group, ["waits"])
    assert (interrupted.exit_code, interrupted.stderr) == (130, "interrupted\n")
    assert CliRunner().invoke(group, ["asks"], input="n\n").exit_code == 1
    help_text = CliRunner().invoke(cli, ["--help"]).output
    assert "130 interrupted (Ctrl-C)" in help_text and "a confirmation declined" in help_text
