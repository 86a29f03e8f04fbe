"""Quotes to the instrument's precision: ``snapshot`` and ``subscribe listen`` show bid/ask/last in its tick's decimals."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from rich.console import Console

from tests.cli.invoke import data, ok
from tests.conftest import TradingStack
from trader.cli import instrument_tables

NOW = datetime.now(UTC)


def words(renderable: object, width: int = 200) -> list[str]:
    console = Console(width=width, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(renderable)
    return console.export_text().split()


def decimals(tick: object) -> int:
    return max(0, -int(Decimal(str(tick)).normalize().as_tuple().exponent))


def test_a_quote_shows_every_price_in_its_ticks_decimals() -> None:
    ticks = [
        {"instrument": "AAPL.STK", "bid": 230.9, "ask": 230.91, "last": 231.0, "min_tick": Decimal("0.01"),
         "time": NOW},
        {"instrument": "ES.FUT.202612", "bid": 5920.0, "ask": 5920.25, "last": 5920.0, "min_tick": 0.25},
        {"instrument": "EUR.USD.CASH", "bid": 1.054, "ask": 1.05395, "last": None, "min_tick": "0.00005"},
    ]
    got = words(instrument_tables.quotes_table(ticks))
    assert {"230.90", "230.91", "231.00", "5920.00", "5920.25", "1.05400", "1.05395"} <= set(got), got
    assert not {"230.9", "5920", "1.054"} & set(got), got


def test_keys_resolved_by_the_caller_give_the_decimals_of_streamed_ticks() -> None:
    ticks = [{"instrument": "ES.FUT.202612", "bid": 5920.0, "ask": 5920.25, "last": 5920.5},
             {"instrument": "MSFT.STK", "bid": 410.1, "ask": 410.12, "last": 410.1}]
    got = words(instrument_tables.quotes_table(ticks, min_ticks={"ES.FUT.202612": Decimal("0.25")}))
    assert {"5920.00", "5920.25", "5920.50"} <= set(got), got
    assert {"410.1", "410.12"} <= set(got), got  # not resolved: as the float reads, nothing invented


def prices_of(text: str, key: str) -> list[str]:
    """Return the price-like cells of ``key``'s row (the numbers with a decimal point)."""
    [row] = [line for line in text.splitlines() if key in line]
    return re.findall(r"(?<![\w.:])\d+\.\d+(?![\w.])", row)


@pytest.mark.slow
def test_snapshot_and_listen_show_prices_to_the_instruments_precision(trading_stack: TradingStack,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    places = {}
    for symbol in ("ES", "EUR.USD", "AAPL"):
        quote = data("snapshot", symbol)
        assert Decimal(str(quote["min_tick"])) > 0, quote  # the snapshot says the instrument's tick
        places[quote["instrument"]] = decimals(quote["min_tick"])
    assert set(places.values()) >= {2, 5}, places  # FX quotes in pips' tenths, ES and AAPL in cents
    table = ok("snapshot", "ES", "EUR.USD", "AAPL").stdout
    for key, n in places.items():
        prices = prices_of(table, key)
        assert len(prices) >= 2 and all(len(p.split(".")[1]) == n for p in prices), (key, prices, table)
    one = ok("snapshot", "ES").stdout
    es = next(k for k in places if k.startswith("ES."))
    assert all(len(p.split(".")[1]) == places[es] for p in prices_of(one, es)), one

    keys = [data("subscribe", "start", symbol)["key"] for symbol in ("ES", "EUR.USD")]
    # --json keeps the ticks as they are on the bus: no tick added
    line = json.loads(ok("--json", "subscribe", "listen", keys[0], "--count", "1").stdout.splitlines()[0])
    assert "min_tick" not in line and line["bid"] > 0
    watched = ok("subscribe", "listen", "--duration", "1.5").stdout
    for key in keys:
        prices = prices_of(watched.split("ticks on")[-1], key)
        assert len(prices) >= 2 and all(len(p.split(".")[1]) == places[key] for p in prices), (key, prices, watched)
    # what a what-if says a market order would pay: the instrument's decimals too (ES 5919.00, not 5919)
    for symbol, key in (("ES", keys[0]), ("EUR.USD", keys[1])):
        said = ok("trade", "buy", symbol, "-q", "1", "--what-if").stdout
        pay = re.search(r"would pay about (\S+)", said)
        assert pay is not None and len(pay.group(1).split(".")[1]) == places[key], said
