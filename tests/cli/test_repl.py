"""``trader repl``: the loop over lines, errors that never end it, completion, the prompt and its history."""

from __future__ import annotations

import io
import json
import threading
import time
from decimal import Decimal

import pytest
from click.testing import CliRunner
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput
from rich.console import Console

from tests.cli.invoke import data
from tests.conftest import StackEnv, TradingStack
from trader.cli import exits
from trader.cli.context import CliContext
from trader.cli.main import cli
from trader.cli.names import LiveNames, stack_fetchers
from trader.cli.repl import Repl, completions


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
    assert completions(cli, "snapshot AAPL M", {"AAPL", "MSFT"}) == completions(cli, "resolve M", {"MSFT"}) == ["MSFT"]
    assert completions(cli, "positions ", {"AAPL"}) == []
    assert completions(cli, "snapshot 'AA", {"AAPL"}) == []  # an open quote: nothing to offer
    assert completions(cli, "strategy ", set()) == ["disable", "drift", "enable", "list", "logs", "reload"]
    assert completions(cli, "strategy disable --f", set()) == ["--flatten"]
    names = {"flipper", "idle"}
    assert completions(cli, "--json strategy logs f", {"FB"}, names) == ["flipper"]
    assert completions(cli, "trade buy ", {"FB"}, names) == ["FB"]
    assert completions(cli, "pycron start ", set(), names) == []  # a job, not a strategy
    assert completions(cli, "pycron restart t", set(), names, jobs={"tws", "bus"}) == ["tws"]
    assert completions(cli, "book cancel ", {"AAPL"}, names, orders={"a1", "b2"}) == ["a1", "b2"]
    assert completions(cli, "book trades --order b", set(), orders={"a1", "b2"}) == ["b2"]
    assert completions(cli, "trade buy AAPL --strategy f", set(), names) == ["flipper"]


def test_live_names_never_hold_the_prompt_and_are_cached() -> None:
    calls: list[str] = []
    release = threading.Event()
    now = [0.0]

    def slow() -> list[str]:
        calls.append("slow")
        release.wait(5)
        return ["flipper"]

    live = LiveNames({"strategy": slow, "order": lambda: calls.append("o") or ["a1"]}, ttl=5.0, wait=0.05,
                     clock=lambda: now[0])
    started = time.monotonic()
    assert live.get("strategy") == frozenset()  # the service is slow: nothing yet, and no waiting
    assert time.monotonic() - started < 0.5
    release.set()
    deadline = time.monotonic() + 5
    while live.get("strategy") != {"flipper"}:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert live.get("order") == {"a1"} and live.get("order") == {"a1"}
    assert calls.count("o") == 1 and calls.count("slow") == 1  # cached for ttl
    now[0] = 6.0
    assert live.get("order") == {"a1"}  # stale: served at once, refreshed behind
    deadline = time.monotonic() + 5
    while calls.count("o") < 2:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert live.get("job") == frozenset()  # a kind nobody fetches


def test_live_names_of_a_stopped_stack_are_none_at_once(stack_env: StackEnv) -> None:
    live = LiveNames(stack_fetchers(CliContext()), wait=5.0)
    started = time.monotonic()
    assert all(live.get(kind) == frozenset() for kind in ("strategy", "order", "job", "key"))
    assert time.monotonic() - started < 2.0


def test_exit_codes_are_explained() -> None:
    assert exits.meaning(4).startswith("not_found: A named thing does not exist")
    assert exits.meaning(5).startswith("risk_limit:")
    assert exits.meaning(2).startswith("usage: bad command-line usage")
    assert exits.meaning(78).startswith("config: A configuration file")
    assert exits.meaning(130) == "interrupted (Ctrl-C)"
    assert exits.meaning(99) == "failed"


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
        "exit 2: usage: bad command-line usage",
        "exit 4: not_found: A named thing does not exist",
        "exit 3: invalid: A request's arguments are invalid",
        "cannot split the line: No closing quotation",
        "already in the REPL",
        "`help COMMAND` for one command",
    ):
        assert expected in said, expected
    out, err = capsys.readouterr()
    for expected in (  # a command's errors go to stderr, as `trader` prints them (exits.report)
        "No such command 'bogus'",
        "No such command 'foo[/x]'",
        "'maybe' is not one of 'on', 'off'",
        "give an order id or --all",
        "No such command 'ghost'",
    ):
        assert expected in err, expected
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

    # Completion from the running stack: open order ids, streamed keys (strategy_service is not running).
    bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
    limit = (bid * Decimal("0.9")).quantize(Decimal("0.01"))
    assert Repl(cli, Console(file=notes)).run([f"trade buy AAPL -q 1 --limit {limit} --id repl-open"]) == 0
    live = LiveNames(stack_fetchers(CliContext()), wait=5.0)
    assert live.get("order") == {"repl-open"} and "MSFT.STK" in live.get("key")
    assert live.get("strategy") == frozenset()  # down: no names, at once
    assert completions(cli, "book cancel repl-", set(), orders=live.get("order")) == ["repl-open"]


def test_the_command_reads_the_prompt_and_keeps_a_history(stack_env: StackEnv) -> None:
    with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
        # Ctrl-C drops the half-typed line and the prompt comes back; Ctrl-D leaves.
        pipe.send_text("help\nbogus\npositions\nsnapshot AA\x03\x04")
        result = CliRunner().invoke(cli, ["repl"], catch_exceptions=False)
    assert result.exit_code == 7, result.output  # the last command's: `positions` found no service
    assert "Usage: trader [OPTIONS] COMMAND" in result.stdout
    assert "No such command 'bogus'" in result.stderr  # errors go to stderr, as `trader` prints them
    assert "exit 7: unavailable" in result.stdout and "not listening" in result.stderr
    history = (stack_env.home / "run" / "repl_history").read_text()
    assert all(f"+{line}\n" in history for line in ("help", "bogus", "positions"))
    assert "snapshot" not in history and result.stdout.count("exit ") == 2  # bogus, positions
