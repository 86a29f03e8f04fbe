"""The trading commands end to end: the ``trader`` CLI in-process against real redis, bus, tws-sim and trader_service."""

from __future__ import annotations

import calendar
import json
import os
import signal
import threading
from decimal import Decimal

import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack, started_trading_stack
from tests.waiting import wait_until_blocking
from trader.cli import account as account_command
from trader.cli import orders
from trader.domain import SecType
from trader.domain.contract_key import MONTH_CODES
from trader.sim.catalogue import Catalogue, load_sim_config
from trader.sim.series import last_trade_day

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
    assert set(account["values"]) <= set(account_command.ACCOUNT_TAGS.split())
    assert "NetLiquidation" in ok("account").stdout

    (es,) = data("resolve", "ES")
    assert es["key"].startswith("ES.FUT.") and es["contract"]["multiplier"] == 50
    assert "IDEALPRO" in ok("resolve", "EUR.USD").stdout
    assert refused(4, "resolve", "NOSUCH").startswith("error (not_found)")

    assert data("book", "cancel", "--all") == {"cancelled": 0}
    assert data("book", "cancel", "--all", "--everything") == {"cancelled": 0}
    assert refused(2, "book", "cancel").startswith("Usage")
    assert "--everything goes with --all" in refused(2, "book", "cancel", "x", "--everything")


def test_resolve_says_what_each_typed_form_became_and_options_go_by_strike(
    trading_stack: TradingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    # tws-sim's futures and options roll: ask what ES's and CL's front months are today, type them as traders do
    es, cl = (data("resolve", symbol)[0] for symbol in ("ES", "CL"))
    es_month, cl_month = es["contract"]["contract_month"], cl["contract"]["contract_month"]
    es_named = f"ES {calendar.month_abbr[int(es_month[4:])]}{es_month[2:4]}"  # ES Dec26
    es_key, cl_key = f"ES.FUT.{es_month}", f"CL.FUT.{cl_month}"
    typed = ["EURUSD", "EUR/USD", es_named, es["local_symbol"], cl["local_symbol"], "SPX", "AAPL"]
    rows = data("resolve", *typed)
    assert [(r["input"], r["key"]) for r in rows] == [
        ("EURUSD", "EUR.CASH.USD"), ("EUR/USD", "EUR.CASH.USD"), (es_named, es_key),
        (es["local_symbol"], es_key), (cl["local_symbol"], cl_key), ("SPX", "SPX.IND"), ("AAPL", "AAPL.STK")]
    front_cl = rows[4]
    assert front_cl["local_symbol"] == f"CL{MONTH_CODES[int(cl_month[4:]) - 1]}{cl_month[3]}"  # CLF7
    assert front_cl["description"] == "Light Sweet Crude Oil"
    # the key is the contract month; CL's last trade is in the month before (CLF7 stops in December)
    assert front_cl["contract"]["expiry"] == last_trade_day("nymex_crude", cl_month).isoformat()
    assert front_cl["contract"]["expiry"][:7].replace("-", "") < cl_month
    monkeypatch.setenv("COLUMNS", "80")
    table = ok("resolve", *typed).stdout
    assert all(len(line) <= 80 for line in table.splitlines()), table
    assert all(word in table for word in (cl["local_symbol"], cl_key, es_named, "Light Sweet Crude Oil"))
    partly = trader("resolve", cl["local_symbol"], "NOSUCH", "AAPL")
    assert partly.exit_code == 4 and cl_key in partly.stdout and "AAPL.STK" in partly.stdout
    assert partly.stderr == "error (not_found): 1 of 3 symbols not resolved (NOSUCH: unknown symbol 'NOSUCH')\n"
    as_json = trader("--json", "resolve", cl["local_symbol"], "NOSUCH")  # the failure is a row too, and the exit code
    assert as_json.exit_code == 4 and json.loads(as_json.stderr)["error"]["code"] == "not_found"
    assert [(r["input"], r.get("key"), "error" in r) for r in json.loads(as_json.stdout)] == [
        (cl["local_symbol"], cl_key, False), ("NOSUCH", None, True)]

    expiry = Catalogue.from_config(load_sim_config()).front("AAPL", SecType.OPT).wire_expiry  # the nearest listed
    call_key, put_key = f"AAPL.OPT.{expiry}.C230", f"AAPL.OPT.{expiry}.P230"
    option = ("AAPL", "--strike", "230", "--right", "C", "--expiry", expiry)
    (call,) = data("resolve", *option)
    assert call["key"] == call_key
    assert data("snapshot", *option)["instrument"] == call_key
    assert data("snapshot", "SPX")["instrument"] == "SPX.IND"
    assert data("subscribe", "start", "AAPL", "--strike", "230", "--right", "put", "--expiry", expiry)["key"] == (
        put_key)
    bought = data("trade", "buy", *option, "-q", "1", "--id", "cli-opt")
    assert bought["order"]["contract"]["key"] == call_key
    assert [r["key"] for r in data("resolve", "AAPL", "--strike", "230", "--expiry", expiry)] == [
        call_key, put_key]  # resolve lists what a symbol names
    assert "ambiguous" in refused(3, "snapshot", "AAPL", "--strike", "230")  # one instrument is needed


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
        assert "LIVE account: BUY 1000 AAPL LMT limit 100 DAY id svc-live. Send?" in declined.stderr
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
    monkeypatch.setattr(orders, "PLACE_TIMEOUT", 1.0)
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
        rows = data("status")
        jobs = {job["name"]: job for job in rows if "state" in job}  # then the data services not in the profile
        assert set(jobs) == {"redis", "bus", "tws", "trader_service", "strategy_service", "history_service"}
        assert [row["name"] for row in rows if "state" not in row] == ["tick_recorder"]
        service = jobs["trader_service"]["service"]
        assert service["connected"] is True and service["kill_switch"] is False
        assert service["ib"] == f"127.0.0.1:{stack_env.ib_port}" and "service" not in jobs["bus"]
        table = ok("status").stdout
        assert all(s in table for s in ("RUNNING", "kill switch", "0 open of 0", "paper"))
    finally:
        ok("down", "--timeout", "30")


def test_off_tick_prices_are_refused_or_rounded_on_request_and_the_prices_sent_are_shown(
    trading_stack: TradingStack,
) -> None:
    bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
    low = (bid * Decimal("0.97")).quantize(Decimal("0.01"))
    off = f"{low}7"  # one digit past the tick: never a tie
    up = low + Decimal("0.01")
    error = refused(3, "trade", "buy", "AAPL", "-q", "1", "--limit", off, "--id", "tick-1")
    assert f"limit price {off} is not a multiple of AAPL.STK's tick 0.01: use {low} or {up}, or --round" in error
    assert "tick-1" not in {o["client_order_id"] for o in data("book")}  # nothing sent, nothing booked

    placed = data("trade", "buy", "AAPL", "-q", "1", "--limit", off, "--round", "--stop-loss-percent", "2",
                  "--take-profit-percent", "3", "--tif", "gtc", "--id", "tick-1")
    assert Decimal(str(placed["order"]["limit_price"])) == low  # a buy limit x.xx7 goes down, never up
    asked, sent = (placed["rounded"][0][k] for k in ("asked", "sent"))
    assert placed["rounded"][0]["field"] == "limit_price" and Decimal(str(asked)) == Decimal(off)
    assert Decimal(str(sent)) == low and placed["rounded"][0]["how"] == "down to tick 0.01"
    assert [r["client_order_id"] for r in placed["rounded"]] == ["tick-1", "tick-1.sl", "tick-1.tp"]

    table = ok("trade", "buy", "AAPL", "-q", "1", "--limit", str(low), "--id", "tick-2").stdout
    assert f"sent tick-2: limit {low}\n" in table
    lower = low - 1
    error = refused(3, "book", "modify", "tick-2", "--limit", f"{lower}3")
    assert f"use {lower} or {lower + Decimal('0.01')}" in error
    assert Decimal(str(data("book", "orders", "--open")[-1]["limit_price"])) == low  # unchanged
    modified = ok("book", "modify", "tick-2", "--limit", f"{lower}3", "--round").stdout
    assert f"sent tick-2: limit {lower} (from {lower}3: down to tick 0.01)" in modified


def test_what_if_shows_costs_and_the_risk_verdict_and_sends_nothing(trading_stack: TradingStack) -> None:
    before = data("book")
    preview = data("trade", "sell", "AAPL", "-q", "100", "--what-if", "--id", "wi-1")
    assert preview["risk"] == {"passed": True, "limit": None, "message": ""}
    broker = preview["broker"]
    assert Decimal(str(broker["commission"])) > 0 and broker["commission_currency"] == "USD"
    assert Decimal(str(broker["init_margin_change"])) > 0 and Decimal(str(broker["maint_margin_change"])) > 0
    assert preview["order"]["client_order_id"] == "wi-1" and preview["order"]["status"] == "PENDING_SUBMIT"
    refusal = trader("trade", "buy", "AAPL", "-q", "1", "--limit", "50", "--what-if", "--id", "wi-2")
    assert refusal.exit_code == 5 and "the risk gate would refuse it: max_price_deviation" in refusal.stderr
    text = refusal.stdout  # the answer is shown all the same, with no id and no status of an order never sent
    # 1 share at 50: IB's $1 minimum is capped at 1 % of the trade's value
    assert "risk gate: refuses: max_price_deviation" in text and "commission: 0.5 USD" in text, text
    assert "wi-2" not in text and "PENDING" not in text and "not sent" in text
    assert "would send BUY LMT: limit 50.00" in text
    as_json = trader("--json", "trade", "buy", "AAPL", "-q", "1", "--limit", "50", "--what-if")
    assert as_json.exit_code == 5 and json.loads(as_json.stdout)["risk"]["passed"] is False
    assert json.loads(as_json.stderr)["error"]["code"] == "risk_limit"
    assert "margin change: initial 12.5" in text and "nothing was sent" in text
    assert "would send" in text and "limit 50" in text
    assert refused(3, "trade", "buy", "AAPL", "-q", "1", "--limit", "50.001", "--what-if").count("use 50.00 or 50.01")
    assert data("book") == before  # nothing booked, nothing journalled


def test_the_kill_switch_keeps_its_reason_and_says_what_it_cancelled(trading_stack: TradingStack) -> None:
    bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
    low = (bid * Decimal("0.97")).quantize(Decimal("0.01"))
    ok("trade", "buy", "AAPL", "-q", "1", "--limit", str(low), "--stop-loss-percent", "2", "--take-profit-percent",
       "3", "--tif", "gtc", "--id", "ks-1")
    ok("trade", "buy", "AAPL", "-q", "1", "--limit", str(low), "--id", "ks-2")
    working = data("book", "orders", "--open")
    assert sorted(o["client_order_id"] for o in working) == ["ks-1", "ks-1.sl", "ks-1.tp", "ks-2"]
    engaged = ok("kill-switch", "on", "--reason", "runaway strategy").stdout
    assert "kill switch ENGAGED (runaway strategy)" in engaged and "already engaged" not in engaged
    assert "cancelled 4 of the platform's 4 open orders" in engaged
    assert "bracket AAPL.STK: parent ks-1, children ks-1.sl, ks-1.tp" in engaged
    again = data("kill-switch", "on")  # without --reason: the first reason stays
    assert (again["engaged"], again["reason"]) == (True, "runaway strategy") and "replaced_reason" not in again
    assert again["already_engaged"] is True and "reason kept" in ok("kill-switch", "on").stdout
    assert (again["cancelled"], again["orders"], again["brackets"]) == (0, [], [])
    assert data("kill-switch") == {"engaged": True, "reason": "runaway strategy"}
    replaced = ok("kill-switch", "on", "--reason", "desk closed").stdout
    assert "ENGAGED (desk closed)" in replaced and "reason replaced; it was: runaway strategy" in replaced
    assert data("kill-switch")["reason"] == "desk closed"
    ok("kill-switch", "off")
