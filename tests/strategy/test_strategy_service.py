"""strategy_service end to end: real redis, bus, tws-sim, trader_service and strategy_service processes.

Plugins are written into a temp strategies directory: one that trades every
change of direction on 1-second bars, one that raises, one that hangs past
its time budget, one returning an absurd target, and one that does not import.
"""

from __future__ import annotations

import time
from decimal import Decimal
from typing import Any

import pytest

from tests.conftest import TradingStack, call, eventually, strategy_stack_fixture
from trader.errors import NotFound

pytestmark = pytest.mark.slow

HEADER = """
import time
import pandas as pd
from trader.strategy import Strategy
"""

PLUGINS = {
    # Long after an up bar, short after a down bar: trades at most bars.
    "flipper.py": HEADER + """
class Flipper(Strategy):
    instruments = ("AAPL",)
    bar_size = "1s"
    warmup = 3

    def signals(self, prices):
        step = prices["close"].diff().fillna(0.0)
        return (step > 0).astype(float) - (step < 0).astype(float)

    def on_fill(self, fill):
        self.log.info("hook on_fill %s %s", fill.action.value, fill.quantity)
""",
    "flipper.yaml": "sizing: {kind: quantity, value: 10}\n",
    "raiser.py": HEADER + """
class Raiser(Strategy):
    instruments = ("MSFT",)
    bar_size = "1s"

    def signals(self, prices):
        raise ZeroDivisionError("the strategy's own bug")
""",
    "sleeper.py": HEADER + """
class Sleeper(Strategy):
    instruments = ("MSFT",)
    bar_size = "1s"

    def signals(self, prices):
        time.sleep(30)
        return pd.Series(0.0, index=prices.index)
""",
    "sleeper.yaml": "time_budget: 0.5\n",
    "absurd.py": HEADER + """
class Absurd(Strategy):
    instruments = ("MSFT",)
    bar_size = "1s"

    def signals(self, prices):
        return pd.Series(25.0, index=prices.index)
""",
    "idle.py": HEADER + """
class Idle(Strategy):
    instruments = ("MSFT",)

    def signals(self, prices):
        return pd.Series(0.0, index=prices.index)
""",
    "idle.yaml": "enabled: false\n",
    "ticker.py": HEADER + """
class Ticker(Strategy):
    instruments = ("MSFT",)

    def signals(self, prices):
        return pd.Series(0.0, index=prices.index)

    def on_tick(self, tick):
        if tick.bid is not None:
            while True:  # hangs on its thread; the next tick finds it over budget
                time.sleep(0.05)
""",
    "ticker.yaml": "time_budget: 0.5\n",
    # The Rx escape hatch: a target from the tick stream itself, no bars.
    "piper.py": HEADER + """
from reactivex import operators as ops


class Piper(Strategy):
    instruments = ("MSFT",)

    def pipeline(self, instrument, ticks):
        return ticks.pipe(ops.map(lambda tick: 1.0))
""",
    "piper.yaml": "sizing: {kind: quantity, value: 7}\n",
    "badpipe.py": HEADER + """
class BadPipe(Strategy):
    instruments = ("MSFT",)

    def pipeline(self, instrument, ticks):
        raise KeyError(instrument)
""",
    "broken.py": HEADER + "\nclass Broken(Strategy)\n    pass\n",
}


strategy_stack = strategy_stack_fixture(PLUGINS)


def strategies(stack: TradingStack) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in call(stack.strategy_endpoint, "list")["strategies"]}


def book_of(stack: TradingStack, name: str) -> tuple[list[Any], list[Any]]:
    orders = [o for o in call(stack.trader_endpoint, "orders") if o.order_ref == name]
    ids = {o.client_order_id for o in orders}
    fills = [f for f in call(stack.trader_endpoint, "trades") if f.client_order_id in ids]
    return orders, fills


def net(fills: list[Any]) -> Decimal:
    return sum((f.quantity if f.action.value == "BUY" else -f.quantity for f in fills), Decimal(0))


def test_strategies_trade_in_the_book_and_failures_stay_isolated(strategy_stack: TradingStack) -> None:
    stack = strategy_stack
    listing = call(stack.strategy_endpoint, "list")
    [error] = listing["errors"]
    assert error["file"].endswith("broken.py") and error["line"] == 6 and "syntax error" in error["reason"]
    assert strategies(stack)["idle"]["state"] == "DISABLED"

    # The flipper trades: its orders and fills are in trader_service's book, under its name.
    eventually(lambda: strategies(stack)["flipper"]["orders"] >= 3, 60, "three flipper orders")
    eventually(lambda: len(book_of(stack, "flipper")[1]) >= 3, 20, "three flipper fills")

    # The others failed alone, each with its reason.
    states = strategies(stack)
    assert states["raiser"]["state"] == "ERROR" and "ZeroDivisionError" in states["raiser"]["reason"]
    assert states["sleeper"]["state"] == "ERROR" and "time budget of 0.5 s" in states["sleeper"]["reason"]
    assert states["absurd"]["state"] == "ERROR" and "outside -1..1" in states["absurd"]["reason"]
    eventually(lambda: "on_tick took longer" in strategies(stack)["ticker"]["reason"], 10, "ticker over budget")
    assert states["badpipe"]["state"] == "ERROR" and "KeyError" in states["badpipe"]["reason"]
    assert any("ZeroDivisionError: the strategy's own bug" in line["message"]
               for line in call(stack.strategy_endpoint, "logs", "raiser"))
    assert states["flipper"]["state"] == "RUNNING"
    assert any(line["message"].startswith("hook on_fill") for line in call(stack.strategy_endpoint, "logs", "flipper"))
    eventually(lambda: strategies(stack)["piper"]["positions"].get("MSFT.STK") == 7, 20, "piper's one order filled")
    [piped] = book_of(stack, "piper")[0]
    assert (piped.action.value, piped.quantity, piped.contract.key) == ("BUY", 7, "MSFT.STK")

    # Disabled, it stops trading; its position is the sum of its fills in the book.
    call(stack.strategy_endpoint, "disable", "flipper")
    eventually(lambda: all(o.status.is_terminal for o in book_of(stack, "flipper")[0]), 10, "flipper orders done")
    orders, fills = book_of(stack, "flipper")
    time.sleep(2.5)
    assert len(book_of(stack, "flipper")[0]) == len(orders)
    info = strategies(stack)["flipper"]
    assert info["state"] == "DISABLED"
    assert Decimal(str(info["positions"].get("AAPL.STK", 0))) == net(fills)
    for order in orders:  # opening 10, then reversals of 20, each filled whole
        assert order.quantity in (10, 20)
        assert sum(f.quantity for f in fills if f.client_order_id == order.client_order_id) == order.filled_quantity

    # Enabled again, it resumes from the book's position.
    call(stack.strategy_endpoint, "enable", "flipper")
    eventually(lambda: strategies(stack)["flipper"]["orders"] > info["orders"], 30, "flipper trading again")
    with pytest.raises(NotFound, match="no strategy 'nope'"):
        call(stack.strategy_endpoint, "enable", "nope")


def test_trader_service_restart_mid_session(strategy_stack: TradingStack) -> None:
    stack = strategy_stack
    eventually(lambda: strategies(stack)["flipper"]["orders"] >= 2, 60, "flipper orders")
    stack.kill("trader_service")
    time.sleep(1.0)
    stack.start("trader_service")
    stack.wait_trader_ready()
    before = strategies(stack)["flipper"]["orders"]
    eventually(lambda: strategies(stack)["flipper"]["orders"] >= before + 2, 60, "orders after the restart")

    def agrees() -> bool:
        _, fills = book_of(stack, "flipper")
        info = strategies(stack)["flipper"]
        return Decimal(str(info["positions"].get("AAPL.STK", 0))) == net(fills) and info["fills"] == len(fills)

    call(stack.strategy_endpoint, "disable", "flipper")
    eventually(agrees, 15, "strategy ledger == book after the restart")
    assert strategies(stack)["raiser"]["state"] == "ERROR"  # nothing else changed

    # strategy_service crashes: pycron would restart it; the switch made over RPC outlives it.
    stack.kill("strategy_service")
    stack.start("strategy_service")
    stack.wait_strategies_ready()
    eventually(lambda: strategies(stack)["flipper"]["reason"] == "disabled", 15, "flipper still disabled")
    eventually(agrees, 15, "a disabled strategy's ledger rebuilt from the book")
