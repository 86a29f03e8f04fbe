"""``close``, the book's filters and the multi-symbol ``snapshot``: the CLI in-process against the real stack."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack, call, started_strategy_stack
from tests.strategy.plugin_texts import HOLDER
from tests.waiting import wait_until_blocking
from trader.errors import Conflict, ValidationError
from trader.messaging.rpc import RpcClient

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def wide_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let rich lay tables out on 200 columns, so cells are not folded in the assertions."""
    monkeypatch.setenv("COLUMNS", "200")


def held() -> dict[str, Decimal]:
    return {p["contract"]["key"]: Decimal(str(p["quantity"])) for p in data("positions") if Decimal(str(p["quantity"]))}


def test_close_flattens_cancels_the_working_orders_first_and_says_when_nothing_is_held(
    trading_stack: TradingStack, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert "nothing to close" in ok("close", "AAPL").stdout
    assert data("close", "--all")["orders"] == []
    assert refused(4, "close", "NOSUCH").startswith("error (not_found)")
    assert refused(2, "close").startswith("Usage")
    assert "a SYMBOL or --all, not both" in refused(2, "close", "AAPL", "--all")

    data("trade", "buy", "AAPL", "-q", "10", "--id", "c-a1", "--strategy", "s1")
    data("trade", "sell", "MSFT", "-q", "3", "--id", "c-m1")
    bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
    resting = data("trade", "buy", "AAPL", "-q", "1", "--limit", str(bid - 5), "--id", "c-rest",
                   "--stop-loss", str(bid - 10), "--take-profit", str(bid + 5), "--strategy", "s2")  # a bracket
    assert resting["order"]["status"] == "SUBMITTED"
    wait_until_blocking(lambda: held() == {"AAPL.STK": 10, "MSFT.STK": -3}, what="the positions")

    monkeypatch.setenv("TRADER_TRADING__LIVE", "true")  # the CLI's settings: a live account is confirmed
    declined = trader("close", "AAPL", stdin="n\n")
    assert declined.exit_code == 1
    assert "LIVE account: close for account DU1234567: AAPL.STK: held 10, SELL 10 MKT, after cancelling 3 " \
           "working orders. Send?" in declined.stderr
    assert held()["AAPL.STK"] == 10 and {o["client_order_id"] for o in data("book", "--open")} == {
        "c-rest", "c-rest.sl", "c-rest.tp"}

    closed = data("close", "AAPL", "--yes")
    assert [o["client_order_id"] for o in closed["cancelled"]] == ["c-rest", "c-rest.sl", "c-rest.tp"]
    assert all(o["status"] == "CANCELLED" for o in closed["cancelled"])
    (sent,) = closed["orders"]
    assert (sent["order"]["action"], Decimal(str(sent["order"]["quantity"])), sent["order"]["status"]) == (
        "SELL", 10, "FILLED")
    assert sent["order"]["order_ref"] == "manual" and closed["errors"] == []
    wait_until_blocking(lambda: held() == {"MSFT.STK": -3}, what="AAPL flat")
    assert data("book", "--open") == []

    table = ok("close", "--all", "--yes").stdout
    assert "closing orders" in table and "BUY" in table and "MSFT.STK" in table
    wait_until_blocking(lambda: held() == {}, what="every position flat")
    assert "nothing to close: account DU1234567 holds no position" in ok("close", "--all").stdout


def test_close_a_strategy_position_and_the_kill_switch(trading_stack: TradingStack) -> None:
    data("trade", "buy", "AAPL", "-q", "7", "--id", "k-s1", "--strategy", "s1")
    data("trade", "buy", "AAPL", "-q", "2", "--id", "k-s2", "--strategy", "s2")
    wait_until_blocking(lambda: held() == {"AAPL.STK": 9}, what="the position")

    data("kill-switch", "on", "--reason", "stop")
    assert "closing is refused too" in refused(5, "close", "AAPL", "--strategy", "s1")
    data("kill-switch", "off")

    closed = data("close", "AAPL", "--strategy", "s1")
    assert [(p["key"], p["action"], Decimal(str(p["quantity"]))) for p in closed["positions"]] == [
        ("AAPL.STK", "SELL", 7)]
    assert closed["orders"][0]["order"]["order_ref"] == "s1"
    wait_until_blocking(lambda: held() == {"AAPL.STK": 2}, what="s2's 2 shares left")
    assert "nothing to close: strategy s1 holds no AAPL" in ok("close", "AAPL", "--strategy", "s1").stdout


def test_book_filters_combine(trading_stack: TradingStack) -> None:
    bid = Decimal(str(data("snapshot", "AAPL")["bid"]))
    for coid, symbol, strategy in (("f1", "AAPL", "s1"), ("f2", "MSFT", "s1"), ("f3", "AAPL", "s2"),
                                   ("f4", "AAPL", "s1")):
        data("trade", "buy", symbol, "-q", "1", "--id", coid, "--strategy", strategy)
    data("trade", "buy", "AAPL", "-q", "1", "--limit", str(bid - 5), "--id", "f5", "--strategy", "s1")

    def ids(*args: str) -> list[str]:
        return [o["client_order_id"] for o in data("book", *args)]

    assert ids() == ["f1", "f2", "f3", "f4", "f5"]
    assert ids("--open") == ["f5"] == [o["client_order_id"] for o in data("book", "orders", "--open")]
    assert ids("--symbol", "aapl") == ["f1", "f3", "f4", "f5"] == ids("--symbol", "AAPL.STK")
    assert ids("--strategy", "s1") == ["f1", "f2", "f4", "f5"]
    assert ids("--symbol", "AAPL", "--strategy", "s1", "-n", "2") == ["f4", "f5"]
    assert ids("-n", "1") == ["f5"] and ids("--symbol", "IBM") == []
    table = ok("book", "--symbol", "AAPL", "--strategy", "s1", "-n", "2").stdout
    assert "2 AAPL orders of s1" in table and "f4" in table and "f1" not in table
    assert "filters go with" in refused(2, "book", "--open", "trades")
    assert refused(2, "book", "-n", "0").startswith("Usage")


def test_snapshot_of_several_symbols(trading_stack: TradingStack) -> None:
    listed = trader("--json", "snapshot", "AAPL", "MSFT", "ES", "NOSUCH")
    assert listed.exit_code == 4  # what was found is shown, and a script notices the failure
    rows = json.loads(listed.stdout, parse_float=Decimal)
    assert json.loads(listed.stderr)["error"]["code"] == "not_found"
    assert [r["symbol"] for r in rows] == ["AAPL", "MSFT", "ES", "NOSUCH"]
    assert [r["quote"]["instrument"] for r in rows[:2]] == ["AAPL.STK", "MSFT.STK"]
    assert rows[2]["quote"]["instrument"].startswith("ES.FUT.") and rows[2]["quote"]["bid"] > 0
    assert rows[3]["error"]["code"] == "not_found" and "quote" not in rows[3]

    some = trader("snapshot", "AAPL", "MSFT", "NOSUCH")
    assert some.exit_code == 4
    assert "AAPL.STK" in some.stdout and "MSFT.STK" in some.stdout and "NOSUCH" not in some.stdout
    assert some.stderr == "error (not_found): 1 of 3 symbols without a quote (NOSUCH: unknown symbol 'NOSUCH')\n"
    assert refused(4, "snapshot", "NOSUCH", "NOPE") == ("error (not_found): 2 of 2 symbols without a quote "
                                                       "(NOSUCH: unknown symbol 'NOSUCH'; NOPE: unknown symbol 'NOPE')\n")
    assert refused(2, "snapshot").startswith("Usage")


def test_close_refuses_a_running_strategy_and_closes_it_once_disabled(stack_env: StackEnv, tmp_path: Path) -> None:
    plugins = tmp_path / "strategies"
    plugins.mkdir()
    (plugins / "holder.py").write_text(HOLDER)
    (plugins / "holder.yaml").write_text("sizing: {kind: quantity, value: 4}\n")
    with started_strategy_stack(stack_env, plugins) as stack:
        wait_until_blocking(lambda: held() == {"AAPL.STK": 4}, 60, "the strategy holding 4 AAPL")
        refusal = refused(9, "close", "AAPL", "--strategy", "holder")
        assert "strategy holder is RUNNING" in refusal and "strategy disable holder --flatten" in refusal
        assert held() == {"AAPL.STK": 4}
        wait_until_blocking(lambda: strategy_holds(stack) == 4, 30, "the strategy's ledger holding 4")
        declined = trader("close", "AAPL")  # the account's close, on paper: asked, as a running strategy holds it
        warned = " ".join(declined.stderr.split())
        assert declined.exit_code == 1 and held() == {"AAPL.STK": 4}, declined.output
        assert "WARNING: strategy holder is RUNNING and holds 4 AAPL.STK" in warned
        assert "out of sync" in warned and "`trader strategy disable holder --flatten`" in warned
        assert "although a running strategy holds it" in warned

        ok("strategy", "disable", "holder")
        closed = data("close", "--all", "--strategy", "holder")
        assert [(o["order"]["order_ref"], o["order"]["action"]) for o in closed["orders"]] == [("holder", "SELL")]
        wait_until_blocking(lambda: held() == {}, what="the strategy's position closed")
        ok("strategy", "enable", "holder")  # resynced from the book: its position is flat, so it buys 4 again
        wait_until_blocking(lambda: held() == {"AAPL.STK": 4}, 60, "the strategy back at its target")
        wait_until_blocking(lambda: strategy_holds(stack) == 4, 30, "the strategy's ledger holding 4")
        anyway = data("close", "AAPL", "--yes")  # confirmed: closed, and the JSON says what it left out of sync
        assert [(w["strategy"], w["key"], Decimal(str(w["quantity"]))) for w in anyway["warnings"]] == [
            ("holder", "AAPL.STK", 4)]
        assert [o["order"]["action"] for o in anyway["orders"]] == ["SELL"] and anyway["errors"] == []


def strategy_holds(stack: TradingStack) -> Decimal:
    """Return the AAPL.STK quantity strategy holder's own ledger holds."""
    (holder,) = [s for s in call(stack.strategy_endpoint, "list")["strategies"] if s["name"] == "holder"]
    return Decimal(str((holder.get("positions") or {}).get("AAPL.STK", 0)))


def test_two_closes_at_once_close_the_position_once(trading_stack: TradingStack) -> None:
    data("trade", "buy", "AAPL", "-q", "6")
    wait_until_blocking(lambda: held() == {"AAPL.STK": 6}, what="the position")

    async def both() -> list[Any]:
        clients = [RpcClient(trading_stack.trader_endpoint) for _ in range(2)]
        try:
            return await asyncio.gather(*(c.call("close_positions", symbol="AAPL", execute=True, timeout=20)
                                          for c in clients))
        finally:
            for client in clients:
                client.close()

    replies = asyncio.run(both())
    assert sorted(len(r["orders"]) for r in replies) == [0, 1]  # the second found nothing left to close
    wait_until_blocking(lambda: held() == {}, what="AAPL flat")
    assert len(data("book", "--symbol", "AAPL")) == 2


def test_one_symbol_matching_typed_hints_the_account_checked_and_the_confirmed_close(
    trading_stack: TradingStack,
) -> None:
    ep = trading_stack.trader_endpoint
    data("trade", "buy", "EUR.USD", "-q", "5000", "--id", "fx1")
    data("trade", "buy", "ES", "-q", "1", "--id", "es1")
    # the book is filtered by any name the resolver reads, as close is
    assert [o["client_order_id"] for o in data("book", "--symbol", "EURUSD")] == ["fx1"]
    assert [o["client_order_id"] for o in data("book", "--symbol", "ES Dec26")] == ["es1"]
    assert refused(4, "book", "--symbol", "NOSUCH").startswith("error (not_found)")

    # a subscription is stopped by its key in any case, and forgotten
    data("subscribe", "start", "NVDA")
    stopped = data("subscribe", "stop", "nvda.stk")  # the reply names the key it resolved to
    assert (stopped["key"], stopped["streaming"], stopped["forgotten"]) == ("NVDA.STK", False, True)
    assert "NVDA.STK" not in call(ep, "subscriptions")
    assert refused(4, "subscribe", "stop", "nvda.stk").startswith("error (not_found)")

    # the hints are typed: a bad one is the caller's error (3), never an internal one
    for method, first, hints in (("snapshot", "AAPL", {"expiry": 20261218}), ("snapshot", "AAPL", {"sec_type": 5}),
                                 ("snapshot", "AAPL", {"right": 1}), ("snapshot", "AAPL", {"bogus": "x"}),
                                 ("snapshots", ["AAPL"], {"expiry": 20261218}),
                                 ("subscribe", "AAPL", {"right": 1})):
        with pytest.raises(ValidationError):
            call(ep, method, first, **hints)

    # the account is checked for a what-if too, and an option's what-if previews the option
    for extra in ((), ("--what-if",)):
        assert refused(4, "trade", "buy", "AAPL", "-q", "1", "--account", "BOGUS", *extra).startswith(
            "error (not_found)")
    preview = data("trade", "buy", "AAPL", "-q", "1", "--what-if", "--expiry", "20261218", "--strike", "230",
                   "--right", "C")
    assert preview["order"]["contract"]["sec_type"] == "OPT" and preview["order"]["contract"]["strike"] == 230

    # the close carried out is the one confirmed
    data("trade", "buy", "MSFT", "-q", "5", "--id", "m1")
    wait_until_blocking(lambda: held().get("MSFT.STK") == 5, what="the MSFT position")
    with pytest.raises(Conflict, match="changed since the close was confirmed"):
        call(ep, "close_positions", symbol="MSFT", execute=True, confirmed={"MSFT.STK": "3"})
    assert held()["MSFT.STK"] == 5
    closed = call(ep, "close_positions", symbol="MSFT", execute=True, confirmed={"MSFT.STK": "5"}, timeout=20)
    assert [o["order"].quantity for o in closed["orders"]] == [5]
