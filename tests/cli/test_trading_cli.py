"""The trading commands end to end: the ``trader`` CLI in-process against real redis, bus, tws-sim and trader_service."""

from __future__ import annotations

import json
import os
import signal
import threading
from decimal import Decimal

import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack, started_trading_stack
from tests.waiting import wait_until_blocking
from trader.cli import trading

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let rich lay tables out on 200 columns, so cells are not folded in the assertions."""
    monkeypatch.setenv("COLUMNS", "200")


def test_orders_fills_holdings_and_instruments(trading_stack: TradingStack) -> None:
    quote = data("snapshot", "AAPL")
    assert quote["instrument"] == "AAPL.STK" and quote["bid"] > 0 and quote["ask"] > 0
    assert "AAPL.STK" in ok("snapshot", "AAPL").stdout

    bought = data("trade", "buy", "AAPL", "--quantity", "10", "--id", "cli-mkt", "--strategy", "t1")
    order = bought["order"]
    assert (order["client_order_id"], order["order_type"], order["status"]) == (
        "cli-mkt",
        "MKT",
        "FILLED",
    )
    assert (order["filled_quantity"], order["order_ref"], bought["children"]) == (10, "t1", [])  # numbers
    assert Decimal(order["avg_fill_price"]) > 0 and order["contract"]["key"] == "AAPL.STK"

    limit = (Decimal(str(quote["bid"])) * Decimal("0.97")).quantize(Decimal("0.01"))
    table = ok(
        "trade",
        "buy",
        "AAPL",
        "-q",
        "5",
        "--limit",
        str(limit),
        "--stop-loss-percent",
        "2",
        "--take-profit-percent",
        "3",
        "--tif",
        "gtc",
        "--id",
        "cli-br",
    ).stdout
    assert all(name in table for name in ("cli-br", "cli-br.sl", "cli-br.tp", "LMT", "STP", "GTC"))
    working = data("book", "orders", "--open")
    assert sorted(o["client_order_id"] for o in working) == ["cli-br", "cli-br.sl", "cli-br.tp"]
    children = {o["client_order_id"]: o for o in working if o["parent_id"] == "cli-br"}
    assert (
        Decimal(children["cli-br.sl"]["stop_price"])
        < limit
        < Decimal(children["cli-br.tp"]["limit_price"])
    )

    modified = data("book", "modify", "cli-br", "--limit", str(limit - 1))
    assert Decimal(modified["order"]["limit_price"]) == limit - 1
    assert refused(2, "book", "modify", "cli-br").startswith("Usage")
    cancelled = data("book", "cancel", "cli-br")
    assert cancelled["order"]["status"] == "CANCELLED"
    assert refused(9, "book", "cancel", "cli-br").startswith("error (conflict)")
    assert refused(4, "book", "cancel", "ghost").startswith("error (not_found)")

    sold = data("trade", "sell", "AAPL", "--amount", "1000", "--id", "cli-amt")
    assert (sold["order"]["action"], sold["order"]["quantity"]) == ("SELL", 4)  # $1000 at ~231
    ioc = trader("trade", "buy", "AAPL", "-q", "1", "--limit", str(limit), "--tif", "IOC")
    assert ioc.exit_code == 0 and "CANCELLED" in ioc.stdout and "unfilled" in ioc.stderr

    book = ok("book").stdout
    assert all(
        name in book for name in ("cli-mkt", "cli-br", "cli-amt", "FILLED", "CANCELLED", "t1")
    )
    fills = data("book", "trades")
    assert [f["client_order_id"] for f in fills] == ["cli-mkt", "cli-amt"]
    assert all(Decimal(f["commission"]) > 0 for f in fills)
    assert [f["client_order_id"] for f in data("book", "trades", "--limit", "1")] == ["cli-amt"]
    trades_table = ok("book", "trades", "--order", "cli-mkt").stdout
    assert "cli-mkt" in trades_table and "cli-amt" not in trades_table and "total" in trades_table

    net = 10 - int(sold["order"]["quantity"])
    positions = data("positions")
    assert [(p["contract"]["key"], Decimal(p["quantity"])) for p in positions] == [
        ("AAPL.STK", net)
    ]
    assert "AAPL.STK" in ok("positions").stdout
    wait_until_blocking(
        lambda: [Decimal(p["quantity"]) for p in data("portfolio")] == [net],
        what="the portfolio shows the position",
    )
    item = data("portfolio")[0]
    assert Decimal(item["market_value"]) > 0 and item["unrealized_pnl"] is not None
    assert "total" in ok("portfolio").stdout

    account = data("account")
    assert account["account"] == "DU1234567"
    assert {"NetLiquidation", "TotalCashValue", "BuyingPower"} <= set(account["values"])
    assert set(account["values"]) <= set(trading.ACCOUNT_TAGS.split())
    assert "NetLiquidation" in ok("account").stdout

    (es,) = data("resolve", "ES")
    assert es["key"].startswith("ES.FUT.") and es["multiplier"] == 50
    assert "IDEALPRO" in ok("resolve", "EUR.USD").stdout
    assert refused(4, "resolve", "NOSUCH").startswith("error (not_found)")

    assert data("book", "cancel", "--all") == {"cancelled": 0}
    assert data("book", "cancel", "--all", "--everything") == {"cancelled": 0}
    assert refused(2, "book", "cancel").startswith("Usage")
    assert "--everything goes with --all" in refused(2, "book", "cancel", "x", "--everything")


def test_refusals_kill_switch_status_and_reconnect(
    trading_stack: TradingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "not_found" in refused(4, "trade", "buy", "NOSUCH", "-q", "1")
    assert "quantity" in refused(3, "trade", "buy", "AAPL", "-q", "-5")
    assert "max_price_deviation" in refused(5, "trade", "buy", "AAPL", "-q", "1", "--limit", "50")
    assert "--quantity and --amount" in refused(
        2, "trade", "buy", "AAPL", "-q", "1", "--amount", "9"
    )
    assert "not both" in refused(
        2, "trade", "sell", "AAPL", "-q", "1", "--stop-loss", "1", "--stop-loss-percent", "1"
    )
    assert "not a number" in refused(2, "trade", "buy", "AAPL", "-q", "ten")

    engaged = data("kill-switch", "on", "--reason", "cli test")
    assert engaged["engaged"] is True and engaged["reason"] == "cli test"
    assert data("kill-switch") == {"engaged": True, "reason": "cli test"}
    assert "kill_switch" in refused(5, "trade", "buy", "AAPL", "-q", "1")
    status = trader("status")  # pycron does not run here: its error, after the service section
    assert status.exit_code == 7 and "pycron is not running" in status.stderr
    assert all(
        s in status.stdout for s in ("trader_service", "ENGAGED: cli test", "connected", "paper")
    )
    assert "released" in ok("kill-switch", "off").stdout
    assert "kill switch off" in ok("kill-switch").stdout
    assert data("trade", "buy", "AAPL", "-q", "1")["order"]["status"] == "FILLED"

    again = data("trade", "buy", "AAPL", "-q", "1", "--id", "cli-once")
    assert (
        data("trade", "buy", "AAPL", "-q", "1", "--id", "cli-once") == again
    )  # idempotent on the id
    assert [o["client_order_id"] for o in data("book")].count("cli-once") == 1

    reconnected = ok("reconnect").stdout
    assert "reconnected to IB" in reconnected and "connection #2" in reconnected

    monkeypatch.setenv("TRADER_TRADING__LIVE", "true")  # the CLI's settings only: the service runs
    declined = trader("trade", "buy", "AAPL", "-q", "2", "--id", "cli-live", stdin="n\n")
    assert (
        declined.exit_code == 1
        and "LIVE account: BUY 2 AAPL MKT DAY id cli-live" in declined.stderr
    )
    assert "cli-live" not in {o["client_order_id"] for o in data("book")}
    assert (
        data("trade", "buy", "AAPL", "-q", "2", "--id", "cli-live", "--yes")["order"]["status"]
        == "FILLED"
    )


def test_a_live_service_is_confirmed_whatever_profile_the_cli_was_given(stack_env: StackEnv) -> None:
    # `trader up --profile live` in one shell, a plain `trader trade` in another: the service says it is live.
    with started_trading_stack(stack_env, TRADER_TRADING__LIVE="true"):
        declined = trader("trade", "buy", "AAPL", "-q", "1e3", "--limit", "1e2", "--id", "svc-live", stdin="n\n")
        assert declined.exit_code == 1
        assert "LIVE account: BUY 1000 AAPL LMT limit 100 DAY id svc-live (prices go onto the tick grid" in (
            declined.stderr)
        assert "svc-live" not in {o["client_order_id"] for o in data("book")}
        bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
        placed = data("trade", "buy", "AAPL", "-q", "1", "--limit", str(bid - 3), "--id", "svc-rest", "--yes")
        assert placed["order"]["status"] == "SUBMITTED"
        modify = trader("book", "modify", "svc-rest", "--limit", str(bid - 4), stdin="n\n")
        assert modify.exit_code == 1 and f"LIVE account: modify svc-rest: limit price {bid - 4}. Send?" in modify.stderr
        assert ok("book", "modify", "svc-rest", "--limit", str(bid - 4), "--yes").exit_code == 0


def test_a_trade_that_gets_no_reply_is_sent_again_with_its_id(
    trading_stack: TradingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trading, "PLACE_TIMEOUT", 1.0)
    pid = trading_stack.procs["trader_service"].pid  # type: ignore[attr-defined]

    def pause(seconds: float) -> threading.Timer:
        os.kill(pid, signal.SIGSTOP)
        timer = threading.Timer(seconds, os.kill, (pid, signal.SIGCONT))
        timer.start()
        return timer

    pause(1.5)  # the first attempt times out, the retry is answered
    # --yes: no question to ask the service first (is it live?), so the order is the first call it gets
    result = trader("--json", "trade", "buy", "AAPL", "-q", "3", "--id", "cli-retry", "--yes")
    assert result.exit_code == 0, result.output
    assert "no reply to place_order within 1s; retrying" in result.stderr
    assert json.loads(result.stdout)["order"]["client_order_id"] == "cli-retry"
    assert [o["client_order_id"] for o in data("book")] == ["cli-retry"]
    assert [f["client_order_id"] for f in data("book", "trades")] == ["cli-retry"]

    paused = pause(3.0)  # both attempts time out: the outcome is unknown, and the CLI says so
    lost = trader("trade", "buy", "AAPL", "-q", "1", "--id", "cli-lost", "--yes")
    assert lost.exit_code == 7
    assert "did not answer place_order within 1s (2 tries)" in lost.stderr
    assert "send it again with --id cli-lost" in lost.stderr
    paused.join()
    for _ in range(2):  # a request that never reached the service; sent again, it is placed once
        assert (
            data("trade", "buy", "AAPL", "-q", "1", "--id", "cli-lost")["order"]["status"]
            == "FILLED"
        )
    assert [o["client_order_id"] for o in data("book")] == ["cli-retry", "cli-lost"]


def test_subscribe_and_listen(trading_stack: TradingStack) -> None:
    started = data("subscribe", "start", "MSFT")
    assert (started["key"], started["topic"]) == ("MSFT.STK", "tick.ib.MSFT.STK")
    assert "AAPL.STK" in ok("subscribe", "start", "AAPL").stdout
    assert data("subscribe", "list") == ["AAPL.STK", "MSFT.STK"]

    lines = ok("--json", "subscribe", "listen", "MSFT.STK", "--count", "3").stdout.splitlines()
    ticks = [json.loads(line) for line in lines]
    assert len(ticks) == 3 and {t["instrument"] for t in ticks} == {"MSFT.STK"}
    # Not ask >= bid: a tick can be momentarily crossed (bid and ask arrive from IB one at a time).
    assert all(t["bid"] > 0 and t["ask"] > 0 and "T" in t["time"] for t in ticks), ticks
    watched = ok("subscribe", "listen", "--duration", "1")
    assert (
        "AAPL.STK" in watched.stdout
        and "MSFT.STK" in watched.stdout
        and "ticks in" in watched.stderr
    )

    assert "stopped streaming MSFT.STK" in ok("subscribe", "stop", "MSFT.STK").stdout
    assert data("subscribe", "list") == ["AAPL.STK"]
    assert refused(4, "subscribe", "stop", "MSFT.STK").startswith("error (not_found)")
    quiet = refused(4, "subscribe", "listen", "MSFT.STK", "--duration", "0.3")  # said at once, not "0 ticks"
    assert quiet.startswith("error (not_found): not subscribed: MSFT.STK (streamed: AAPL.STK)"), quiet


@pytest.mark.usefixtures("stack_env")
def test_a_stopped_service_is_unavailable_at_once() -> None:
    result = trader("positions")
    port = os.environ["TRADER_SERVICES__TRADER_SERVICE__RPC_PORT"]
    assert result.exit_code == 7
    assert result.stderr == (
        f"error (unavailable): trader_service is not listening on "
        f"tcp://127.0.0.1:{port}; start the stack with `trader up`\n"
    )
    assert "not listening" in trader("subscribe", "listen", "--count", "1").stderr


def test_status_shows_trader_service_under_pycron(stack_env: StackEnv) -> None:
    ok("up", "--detach", "--profile", "test", "--timeout", "30")
    try:
        jobs = {job["name"]: job for job in data("status")}
        assert set(jobs) == {"redis", "bus", "tws", "trader_service", "strategy_service"}
        service = jobs["trader_service"]["service"]
        assert service["connected"] is True and service["kill_switch"] is False
        assert service["ib"] == f"127.0.0.1:{stack_env.ib_port}" and "service" not in jobs["bus"]
        table = ok("status").stdout
        assert all(s in table for s in ("RUNNING", "kill switch", "0 open of 0", "paper"))
    finally:
        ok("down", "--timeout", "30")
