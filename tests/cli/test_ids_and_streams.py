"""Order ids as tables show them, streamed keys as users type them, and the prices a bracket reports: on the stack."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import TradingStack

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let rich lay tables out on 200 columns, so cells are not folded in the assertions."""
    monkeypatch.setenv("COLUMNS", "200")


def test_an_order_is_cancelled_or_modified_by_the_id_a_narrow_table_shows_or_its_prefix(
    trading_stack: TradingStack,
) -> None:
    below = int(Decimal(str(data("snapshot", "AAPL")["bid"]))) - 1  # a whole price: a resting buy limit
    placed = ok("trade", "buy", "AAPL", "-q", "1", "--limit", str(below), "--id", "96ca1f2e0d3c",
                "--stop-loss-percent", "1", "--take-profit-percent", "2").stdout
    stop, target = Decimal(below) * Decimal("0.99"), Decimal(below) * Decimal("1.02")  # on the 0.01 grid already
    assert f"sent 96ca1f2e0d3c.sl: stop {stop:.2f}\n" in placed and f"96ca1f2e0d3c.tp: limit {target:.2f}\n" in placed
    assert "(from" not in placed  # nothing was rounded, so nothing is said to be
    data("trade", "buy", "AAPL", "-q", "1", "--limit", str(below), "--id", "96cb00aa0d3c")

    modified = ok("book", "modify", "96ca", "--limit", str(below - 1)).stdout  # the prefix names the parent
    assert f"sent 96ca1f2e0d3c: limit {below - 1}.00" in modified
    ambiguous = trader("--json", "book", "cancel", "96c…0d3c")
    assert ambiguous.exit_code == 3
    error = json.loads(ambiguous.stderr)["error"]
    assert error["details"]["candidates"] == ["96ca1f2e0d3c", "96cb00aa0d3c"] and "give more" in error["message"]
    assert "no order '96c'" in refused(4, "book", "cancel", "96c")  # a prefix of 3 is too short

    cancelled = ok("book", "cancel", "96ca…0d3c").stdout  # as `book` abbreviates it at 80 columns
    assert "cancel 96ca1f2e0d3c" in cancelled and "CANCELLED" in cancelled
    assert data("book", "cancel", "96cb")["order"]["status"] == "CANCELLED"
    assert data("book", "--open") == []


def test_listen_takes_what_the_user_types_and_ends_its_output_with_a_newline(trading_stack: TradingStack) -> None:
    assert data("subscribe", "start", "EUR.USD")["key"] == "EUR.CASH.USD"
    listened = ok("--json", "subscribe", "listen", "EURUSD", "-n", "1").stdout
    (tick,) = [json.loads(line) for line in listened.splitlines()]
    assert tick["instrument"] == "EUR.CASH.USD"  # EURUSD is what resolve reads as the streamed EUR.CASH.USD
    assert "not subscribed: MSFT (MSFT.STK)" in refused(4, "subscribe", "listen", "MSFT")
    assert "not subscribed: NOSUCH " in refused(4, "subscribe", "listen", "NOSUCH")

    watched = ok("subscribe", "listen", "-d", "1")  # stdout is not a terminal here, as when piped to a file
    assert watched.stdout.endswith("\n") and "EUR.CASH.USD" in watched.stdout
    assert "ticks of every streamed key" in watched.stdout and "tick.ib" not in watched.stdout
    assert "ticks of EUR.CASH.USD" in ok("subscribe", "listen", "EUR/USD", "-d", "0.5").stdout

    off = refused(3, "trade", "buy", "EUR.USD", "-q", "20000", "--limit", "1.08513")
    assert "limit price 1.08513 is not a multiple of EUR.CASH.USD's tick 0.00005" in off
