"""The ``trader`` group: exit codes in --help and README, TraderError -> exit code + one line, --json anywhere."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import click
from click.testing import CliRunner

from trader.cli import exits
from trader.cli.jobs import format_duration
from trader.cli.jsonout import JSON_FLAG, dumps, to_jsonable
from trader.cli.main import TraderGroup, cli
from trader.errors import EXIT_CODES, ConfigError, NotFound

README = Path(__file__).resolve().parents[2] / "README.md"


def _help_codes() -> list[int]:
    text = CliRunner().invoke(cli, ["--help"]).output
    table = text[text.index("Exit codes:"):]
    return [int(m.group(1)) for m in re.finditer(r"^\s+(\d+)\s+\S", table, re.MULTILINE)]


def test_help_lists_every_exit_code_once() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for code, exit_code in EXIT_CODES.items():
        assert re.search(rf"^\s+{exit_code}\s+.*\b{code}\b", result.output, re.MULTILINE), code
    codes = _help_codes()
    assert len(codes) == len(set(codes)) and {0, 1, 2, 78, 130} <= set(codes), codes
    for command in ("up", "down", "status", "pycron"):
        assert command in result.output


def test_usage_and_config_errors_do_not_share_a_code() -> None:
    usage = CliRunner().invoke(cli, ["trade", "buy"])  # SYMBOL missing
    assert usage.exit_code == 2 and "Missing argument" in usage.stderr
    assert ConfigError.exit_code == 78 and 2 not in EXIT_CODES.values()
    assert exits.meaning(2).startswith("usage:") and exits.meaning(78).startswith("config:")


def test_readme_lists_the_exit_codes_of_the_help() -> None:
    text = README.read_text()
    section = text[text.index("### Exit codes"):]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == exits.exit_codes()
    assert [int(code) for code, _ in rows] == _help_codes()


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
    assert (result.exit_code, result.stderr) == (78, "error (config): bad file: line 3\n")


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


def _commands(command: click.Command, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))


def test_every_command_takes_json_before_or_after(tmp_path: Path) -> None:
    for path, command in _commands(cli):
        assert any(JSON_FLAG in p.opts for p in command.params), " ".join(path)
    for n, args in enumerate((["--json", "keys", "generate"], ["keys", "--json", "generate"],
                              ["keys", "generate", "--json"])):
        result = CliRunner().invoke(cli, [*args, "--dir", str(tmp_path), "--name", f"k{n}"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["public_file"] == str(tmp_path / f"k{n}.key")


def test_errors_in_json_mode_are_json_on_stderr_with_the_same_code(tmp_path: Path) -> None:
    def error(*args: str) -> tuple[int, dict[str, str]]:
        result = CliRunner().invoke(cli, list(args))
        assert result.stdout == "", result.stdout
        return result.exit_code, json.loads(result.stderr)["error"]

    code, body = error("book", "--json", "--bogus")  # a usage error, before the flag is read
    assert code == 2 and body == {"type": "NoSuchOption", "message": "No such option '--bogus'.", "code": "usage"}
    code, body = error("trade", "buy", "--json")  # SYMBOL missing: the flag is eager
    assert code == 2 and body["code"] == "usage" and "SYMBOL" in body["message"]
    code, body = error("keys", "generate", "--dir", str(tmp_path), "--name", "../x", "--json")
    assert (code, body["type"], body["code"]) == (78, "ConfigError", "config")
    assert "plain file name" in body["message"]
    text = CliRunner().invoke(cli, ["keys", "generate", "--dir", str(tmp_path), "--name", "../x"])
    assert text.exit_code == 78 and text.stderr.startswith("error (config): ")


def test_json_numbers_are_exact_decimals() -> None:
    value = {"qty": Decimal(10), "avg": Decimal("231.30021978021978"), "tick": Decimal("0.00001"),
             "neg": Decimal("-5918.625"), "nan": Decimal("NaN"), "big": Decimal("1E+3"), "f": 0.5}
    text = dumps(value, indent=None)
    assert text == ('{"qty":10,"avg":231.30021978021978,"tick":0.00001,"neg":-5918.625,"nan":null,'
                    '"big":1000,"f":0.5}')
    assert json.loads(dumps(value), parse_float=Decimal)["avg"] == Decimal("231.30021978021978")
    assert json.dumps(to_jsonable(value)) == json.dumps(  # plain json.dumps still writes valid JSON
        {"qty": "10", "avg": "231.30021978021978", "tick": "0.00001", "neg": "-5918.625", "nan": None,
         "big": "1000", "f": 0.5})


def test_json_writes_a_whole_float_as_an_integer_like_a_quantity() -> None:
    from trader.cli.jsonout import dumps

    assert dumps({"bid_size": 321.0, "bid": 230.91, "volume": 96600.0, "nan": float("nan")}, indent=None) == (
        '{"bid_size":321,"bid":230.91,"volume":96600,"nan":null}')
