"""``trader repl``: the loop over lines, errors that never end it, completion, the prompt and its history."""

from __future__ import annotations

import io
import json

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from tests.conftest import StackEnv, TradingStack
from trader.cli.main import cli
from trader.cli.repl import Repl, completions, exit_meaning


def test_completions_follow_the_command_tree() -> None:
    top = completions(cli, "", set())
    assert {"book", "trade", "subscribe", "status", "help", "exit", "quit"} <= set(top)
    assert completions(cli, "bo", set()) == ["book"]
    assert completions(cli, "book ", set()) == ["cancel", "modify", "orders", "trades"]
    assert completions(cli, "--json --profile test sub", set()) == ["subscribe"]
    assert completions(cli, "subscribe l", set()) == ["list", "listen"]
    assert completions(cli, "trade buy --take", set()) == ["--take-profit", "--take-profit-percent"]
    assert completions(cli, "--j", set()) == ["--json"]
    assert completions(cli, "trade sell A", {"AAPL", "MSFT", "AMZN"}) == ["AAPL", "AMZN"]
    assert completions(cli, "subscribe listen ", {"MSFT.STK"}) == ["MSFT.STK"]
    assert completions(cli, "positions ", {"AAPL"}) == []
    assert completions(cli, "snapshot 'AA", {"AAPL"}) == []  # an open quote: nothing to offer
    assert completions(cli, "strategy ", set()) == ["disable", "enable", "list", "logs", "reload"]
    assert completions(cli, "strategy disable --f", set()) == ["--flatten"]
    names = {"flipper", "idle"}
    assert completions(cli, "--json strategy logs f", {"FB"}, names) == ["flipper"]
    assert completions(cli, "trade buy ", {"FB"}, names) == ["FB"]
    assert completions(cli, "pycron start ", set(), names) == []  # a job, not a strategy


def test_exit_codes_are_explained() -> None:
    assert exit_meaning(4).startswith("not_found: A named thing does not exist")
    assert exit_meaning(5).startswith("risk_limit:")
    assert exit_meaning(2).startswith("usage: bad command-line usage")
    assert exit_meaning(78).startswith("config: A configuration file")
    assert exit_meaning(130) == "interrupted (Ctrl-C)"
    assert exit_meaning(99) == "failed"


@pytest.mark.slow
def test_the_loop_runs_every_line_and_survives_errors(
    trading_stack: TradingStack, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    notes = io.StringIO()
    shell = Repl(cli, Console(file=notes, width=200))
    lines = [
        "# a comment, then an empty line",
        "",
        "snapshot AAPL",
        "trader trade buy AAPL -q 2 --id repl-1",
        "bogus",
        "foo[/x]",  # rich markup in a message must be printed as typed, not parsed (a MarkupError ended the REPL)
        "kill-switch maybe",
        "trade buy NOSUCH -q 1",
        "trade buy AAPL -q -1",
        "book cancel",
        "snapshot 'AAPL",
        "repl",
        "help",
        "help book trades",
        "help ghost",
        "--json book orders",
        "subscribe start MSFT",
        "exit",
        "positions",
    ]
    assert shell.run(lines) == 0
    said = notes.getvalue()
    for expected in (
        "No such command 'bogus'",
        "No such command 'foo[/x]'",
        "'maybe' is not one of 'on', 'off'",
        "exit 2: config error or bad command-line usage",
        "exit 4: not_found: A named thing does not exist",
        "exit 3: invalid: A request's arguments are invalid",
        "give an order id or --all",
        "cannot split the line: No closing quotation",
        "already in the REPL",
        "`help COMMAND` for one command",
        "No such command 'ghost'",
    ):
        assert expected in said, expected
    out, err = capsys.readouterr()
    assert "AAPL.STK" in out and "repl-1" in out and "FILLED" in out
    assert "Usage: trader [OPTIONS] COMMAND" in out and "Usage: trader book trades" in out
    assert '"client_order_id": "repl-1"' in out  # --json on one line only
    assert "streaming MSFT.STK" in out
    assert "avg cost" not in out  # `positions` came after `exit`
    assert "error (not_found): unknown symbol 'NOSUCH'" in err
    assert shell.symbols == {"AAPL", "MSFT"}

    scripted = Repl(cli, Console(file=notes), global_args=["--json"])  # as `trader --json repl`
    assert scripted.run(["positions", "quit"]) == 0
    (position,) = json.loads(capsys.readouterr().out)
    assert (position["contract"]["key"], position["quantity"]) == ("AAPL.STK", 2)
    assert scripted.run(["book cancel ghost"]) == 4


def test_the_command_reads_the_prompt_and_keeps_a_history(stack_env: StackEnv) -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        # Ctrl-C drops the half-typed line and the prompt comes back; Ctrl-D leaves.
        pipe.send_text("help\nbogus\npositions\nsnapshot AA\x03\x04")
        result = CliRunner().invoke(cli, ["repl"], catch_exceptions=False)
    assert result.exit_code == 7, result.output  # the last command's: `positions` found no service
    assert "Usage: trader [OPTIONS] COMMAND" in result.stdout
    assert "No such command 'bogus'" in result.stdout
    assert "exit 7: unavailable" in result.stdout and "not listening" in result.stderr
    history = (stack_env.home / "run" / "repl_history").read_text()
    assert all(f"+{line}\n" in history for line in ("help", "bogus", "positions"))
    assert "snapshot" not in history and result.stdout.count("exit ") == 2  # bogus, positions
