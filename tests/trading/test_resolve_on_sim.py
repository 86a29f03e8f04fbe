"""What traders type, resolved against real tws-sim through ib_async (IbAdapter): each form to its contract key.

tws-sim runs in-process on an ephemeral port with the repository's catalogue
(and, for the six-letter rule, one extra stock); the resolver reads dates from
a fixed day, 7 December 2026, and tws-sim lists its rolling series as of that
day (its clock moved there), so one-digit years and front months do not move.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import ib_async
import pytest

from tests.sim.simulator import connect, running_sim, shifted_clock, sim_config, wait_for
from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, TradingSettings
from trader.domain import SecType
from trader.errors import NotFound, ValidationError
from trader.sim.catalogue import Catalogue, InstrumentConfig
from trader.trading.instruments import Resolver

TODAY = date(2026, 12, 7)
NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)
# A stock whose symbol is two currencies: the six-letter rule must not make it a pair.
AUDUSD_STOCK = InstrumentConfig(conid=990001, symbol="AUDUSD", sec_type=SecType.STK, primary_exchange="NYSE",
                                long_name="A STOCK NAMED LIKE A PAIR", price=Decimal(10))
# A future whose IB symbol is not its code's root (CME's euro FX: symbol EUR, local symbol 6EZ6).
EURO_FX = InstrumentConfig(conid=990002, symbol="EUR", sec_type=SecType.FUT, exchange="CME", expiry="20261214",
                           multiplier=Decimal(125000), local_symbol="6EZ6", trading_class="6E",
                           tick_size=Decimal("0.00005"), price=Decimal("1.06"))


def on_sim(test: Callable[[Resolver, IbAdapter, Catalogue], Awaitable[None]]) -> None:
    """Run ``test`` with a resolver over an IbAdapter connected to a fresh tws-sim."""

    async def main() -> None:
        config = sim_config()
        config = config.model_copy(update={"instruments": [*config.instruments, AUDUSD_STOCK, EURO_FX]})
        async with running_sim(config, shifted_clock(TODAY)) as sim:
            adapter = IbAdapter(IbSettings(port=sim.port, client_id=5), TradingSettings())
            adapter.start()
            try:
                assert await adapter.wait_connected(10)
                await test(Resolver(adapter, now=lambda: NOW), adapter, Catalogue.from_config(config, TODAY))
            finally:
                await adapter.stop()

    asyncio.run(main())


TYPED = {
    "EURUSD": "EUR.CASH.USD",
    "eurusd": "EUR.CASH.USD",
    "EUR/USD": "EUR.CASH.USD",
    "EUR.USD": "EUR.CASH.USD",
    "USDJPY": "USD.CASH.JPY",
    "AUDUSD": "AUDUSD.STK",  # a stock of that symbol exists: it wins
    "AUD/USD": "AUD.CASH.USD",
    "ESZ6": "ES.FUT.202612",
    "ESZ26": "ES.FUT.202612",
    "ESH7": "ES.FUT.202703",
    "ES Dec26": "ES.FUT.202612",
    "ES DEC26": "ES.FUT.202612",
    "CLF7": "CL.FUT.202701",  # January 2027, last traded in December 2026
    "CL Jan27": "CL.FUT.202701",
    "CL": "CL.FUT.202701",  # the front month
    "ES": "ES.FUT.202612",
    "CL.FUT.202701": "CL.FUT.202701",
    "6EZ6": "EUR.FUT.202612",  # not symbol 6E: read as the local symbol
    "AAPL": "AAPL.STK",
    "AAPL.OPT.20261218.C230": "AAPL.OPT.20261218.C230",
    "SPX": "SPX.IND",
    "NDX": "NDX.IND",
    "VIX": "VIX.IND",
    "BRK.B": "BRK_B.STK",  # IB's symbol is "BRK B"
    "BRK/B": "BRK_B.STK",
    "brk b": "BRK_B.STK",
    "BRK_B.STK": "BRK_B.STK",
}


def test_each_typed_form_resolves_to_its_contract_key() -> None:
    async def check(resolver: Resolver, _adapter: IbAdapter, _catalogue: Catalogue) -> None:
        got = {typed: (await resolver.one(typed)).key for typed in TYPED}
        assert got == TYPED
        clf7 = (await resolver.one("CLF7")).contract
        assert (clf7.local_symbol, clf7.expiry, clf7.contract_month) == ("CLF7", date(2026, 12, 22), "202701")  # NYMEX's rule, holidays aside
        assert resolver.known("cl.fut.202701") is resolver.known("CL.FUT.202701") is not None  # keys: any case
        for unknown in ("SEKNOK", "NOSUCH", "ESF6", "ES Jan27"):  # a pair, a symbol, months tws-sim does not list
            with pytest.raises(NotFound):
                await resolver.one(unknown)

    on_sim(check)


def test_every_catalogue_key_resolves_to_its_own_contract() -> None:
    async def check(resolver: Resolver, _adapter: IbAdapter, catalogue: Catalogue) -> None:
        for inst in catalogue:
            found = await resolver.one(inst.contract.key)
            assert (found.key, found.contract.conid) == (inst.contract.key, inst.conid)

    on_sim(check)


def test_the_front_month_and_a_one_digit_year_move_with_the_date() -> None:
    async def check(resolver: Resolver, _adapter: IbAdapter, _catalogue: Catalogue) -> None:
        days = iter([NOW, NOW, datetime(2026, 12, 19, tzinfo=UTC), datetime(2026, 12, 19, tzinfo=UTC)])
        resolver.now = lambda: next(days)
        before = [(await resolver.one(typed)).key for typed in ("ES", "ESH7")]
        after = [(await resolver.one(typed)).key for typed in ("ES", "ESH7")]
        assert before == ["ES.FUT.202612", "ES.FUT.202703"]
        assert after == ["ES.FUT.202703", "ES.FUT.202703"]  # ESZ6 last traded on the 18th

    on_sim(check)


def test_on_its_last_day_the_front_month_rolls_at_its_last_trade_time() -> None:
    async def check(resolver: Resolver, _adapter: IbAdapter, _catalogue: Catalogue) -> None:
        esz6 = (await resolver.one("ESZ6"))
        assert esz6.last_trade == datetime(2026, 12, 18, 8, 30, tzinfo=ZoneInfo("US/Central"))  # 14:30 UTC
        clock = [datetime(2026, 12, 18, 14, 29, tzinfo=UTC)]
        resolver.now = lambda: clock[0]
        assert (await resolver.one("ES")).key == "ES.FUT.202612"  # its last morning: still trading
        clock[0] = datetime(2026, 12, 18, 14, 30, tzinfo=UTC)
        assert (await resolver.one("ES")).key == "ES.FUT.202703"  # the same day, at its close: rolled

    on_sim(check)


def test_options_by_strike_right_and_expiry() -> None:
    async def check(resolver: Resolver, _adapter: IbAdapter, _catalogue: Catalogue) -> None:
        call = await resolver.one("AAPL", strike=Decimal(230), right="C", expiry="20261218")
        assert (call.key, call.contract.multiplier) == ("AAPL.OPT.20261218.C230", Decimal(100))
        assert (await resolver.one("AAPL", strike="230", right="PUT", expiry="202612")).key == "AAPL.OPT.20261218.P230"
        assert (await resolver.one("SPY", strike=Decimal(590), right="P", expiry="202612")).key == (
            "SPY.OPT.20261218.P590")
        with pytest.raises(ValidationError, match="ambiguous") as refused:
            await resolver.one("AAPL", strike=Decimal(230), expiry="20261218")  # the call and the put
        assert sorted(refused.value.details["candidates"]) == ["AAPL.OPT.20261218.C230", "AAPL.OPT.20261218.P230"]
        with pytest.raises(NotFound):
            await resolver.one("AAPL", strike=Decimal(235), right="C")

    on_sim(check)


def test_an_index_has_market_data_and_takes_no_orders() -> None:
    async def check(resolver: Resolver, adapter: IbAdapter, _catalogue: Catalogue) -> None:
        for symbol, exchange in (("SPX", "CBOE"), ("NDX", "NASDAQ"), ("VIX", "CBOE")):
            inst = await resolver.one(symbol)
            assert (inst.contract.sec_type, inst.contract.exchange) == (SecType.IND, exchange)
            tick: dict[str, Any] = await adapter.snapshot(inst.contract)
            prices = [tick.get(name) for name in ("bid", "ask", "last")]
            assert any(p is not None and p > 0 for p in prices), tick
        ib = await connect(adapter.ib.client.port, 9)  # an order on an index: refused, as IB does
        try:
            spx = ib_async.Index("SPX", "CBOE", "USD")
            await ib.qualifyContractsAsync(spx)
            trade = ib.placeOrder(spx, ib_async.MarketOrder("BUY", 1))
            await wait_for(lambda: trade.isDone(), what="the index order's refusal")
            assert trade.orderStatus.status == "Cancelled" and trade.log[-1].errorCode == 201, trade.log
        finally:
            ib.disconnect()

    on_sim(check)
