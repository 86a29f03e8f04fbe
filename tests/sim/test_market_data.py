"""Contracts, market data and history through the unmodified ib_async client."""

from __future__ import annotations

import asyncio
import math

from ib_async import Contract, Forex, Future, Option, Stock

from tests.sim.simulator import connect, listed, running_sim, wait_for


def test_qualify_contracts_of_every_kind() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: list[tuple[int, int]] = []
            ib.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
            front = listed(server, "ES")[0]  # the series roll: ask the sim which contract is ES's front today
            call = next(i for i in listed(server, "AAPL", "OPT") if i.wire_right == "C" and i.wire_strike == 230)
            stock, future, fx, option, etf, unknown = await ib.qualifyContractsAsync(
                Stock("AAPL", "SMART", "USD"),
                Future("ES", front.wire_contract_month, "CME"),
                Forex("EURUSD"),
                Option("AAPL", call.wire_expiry, 230, "C", "SMART"),
                Contract(conId=756733),
                Stock("NOPE", "SMART", "USD"),
            )
            assert stock.conId == 265598 and stock.primaryExchange == "NASDAQ"
            assert (future.conId, future.localSymbol, future.multiplier) == (front.conid, front.contract.local_symbol, "50")
            assert future.lastTradeDateOrContractMonth == front.wire_expiry
            assert future.localSymbol == f"ES{'HMUZ'[int(front.wire_contract_month[4:]) // 3 - 1]}{front.wire_expiry[3]}"
            assert (fx.conId, fx.localSymbol, fx.exchange) == (12087792, "EUR.USD", "IDEALPRO")
            assert (option.conId, option.strike, option.right, option.multiplier) == (call.conid, 230.0, "C", "100")
            assert etf.symbol == "SPY" and etf.secType == "STK"
            assert unknown is None and any(code == 200 for _, code in errors)
            details = await ib.reqContractDetailsAsync(Future("ES", exchange="CME"))
            assert sorted(d.contract.localSymbol for d in details) == sorted(i.contract.local_symbol
                                                                             for i in listed(server, "ES"))
            assert len(details) == 3 and all(d.minTick == 0.25 and d.longName == "E-mini S&P 500" for d in details)
            # IB's last trade time and exchange time zone, as ContractDetails carries them
            assert {(d.lastTradeTime, d.timeZoneId) for d in details} == {("08:30:00", "US/Central")}
            ib.disconnect()

    asyncio.run(scenario())


def test_matching_symbols() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            found = await ib.reqMatchingSymbolsAsync("MS")
            assert found is not None
            assert found[0].contract.symbol == "MSFT" and found[0].contract.conId == 272093
            aapl = (await ib.reqMatchingSymbolsAsync("AAPL"))[0]  # type: ignore[index]
            assert aapl.derivativeSecTypes == ["OPT"]
            ib.disconnect()

    asyncio.run(scenario())


def test_streaming_quotes_update_and_stop_on_cancel() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [es] = await ib.qualifyContractsAsync(Future("ES", listed(server, "ES")[0].wire_contract_month, "CME"))
            ticker = ib.reqMktData(es)
            await wait_for(lambda: ticker.bid > 0 and ticker.ask > 0 and ticker.bidSize > 0, what="first quote")
            assert ticker.ask - ticker.bid == 0.25
            assert ticker.close == 5925.0
            await wait_for(lambda: not math.isnan(ticker.last) and ticker.volume > 0, what="a trade")
            updates = len(ticker.ticks)
            first_time = ticker.time
            await wait_for(lambda: ticker.time != first_time, what="more ticks")
            sub_count = sum(len(s.market_data) for s in server.sessions.values())
            assert sub_count == 1 and updates >= 1
            ib.cancelMktData(es)
            await wait_for(lambda: not server.sessions[1].market_data, what="subscription removed")
            ib.disconnect()

    asyncio.run(scenario())


def test_snapshot_and_delayed_market_data() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            spy, eur = await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD"), Forex("EURUSD"))
            tickers = await asyncio.wait_for(ib.reqTickersAsync(spy, eur), 5)
            assert all(t.bid > 0 and t.ask > t.bid for t in tickers)
            assert not server.sessions[1].market_data  # a snapshot leaves no subscription
            ib.reqMarketDataType(3)
            delayed = ib.reqMktData(spy)
            await wait_for(lambda: delayed.marketDataType == 3, what="delayed data type")
            await wait_for(lambda: any(t.tickType == 66 for t in delayed.ticks), what="a delayed bid tick")
            ib.disconnect()

    asyncio.run(scenario())


def test_pausing_the_market_freezes_quotes() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            server.pause_market(True)
            steps = server.market.steps
            await asyncio.sleep(0.3)  # several tick intervals at 20/s: nothing may move
            assert server.market.steps == steps
            server.pause_market(False)
            await wait_for(lambda: server.market.steps > steps, what="market resumed")
            ib.disconnect()

    asyncio.run(scenario())


def test_historical_bars_end_at_the_live_market() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            daily = await ib.reqHistoricalDataAsync(aapl, "", "1 Y", "1 day", "TRADES", False)
            assert 360 <= len(daily) <= 367
            assert all(b.low <= min(b.open, b.close) and b.high >= max(b.open, b.close) for b in daily)
            minutes = await ib.reqHistoricalDataAsync(aapl, "", "3600 S", "1 min", "MIDPOINT", False)
            assert 59 <= len(minutes) <= 61
            state = server.market.state(aapl.conId)
            assert abs(minutes[-1].close - float(state.mid)) < 0.5
            hours = await ib.reqHistoricalDataAsync(aapl, "", "2 D", "1 hour", "TRADES", False)
            assert hours[-1].close == daily[-1].close  # both end at the same live minute
            assert 48 <= len(hours) <= 49
            ib.disconnect()

    asyncio.run(scenario())


def test_historical_errors_are_error_162() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *_: errors.append(code)
            [eur] = await ib.qualifyContractsAsync(Forex("EURUSD"))
            bars = await ib.reqHistoricalDataAsync(eur, "", "1 D", "1 hour", "TRADES", False)
            assert len(bars) == 0 and errors == [162]
            bars = await ib.reqHistoricalDataAsync(eur, "", "1 D", "7 mins", "MIDPOINT", False)
            assert len(bars) == 0 and errors == [162, 162]
            bars = await ib.reqHistoricalDataAsync(eur, "", "1 D", "1 hour", "MIDPOINT", False)
            assert len(bars) >= 24
            ib.disconnect()

    asyncio.run(scenario())


def test_keep_up_to_date_bars_are_updated_and_stop_on_cancel() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            bars = await ib.reqHistoricalDataAsync(aapl, "", "1800 S", "1 min", "MIDPOINT", False,
                                                   keepUpToDate=True)
            assert len(bars) >= 29
            updates: list[bool] = []
            bars.updateEvent += lambda _bars, has_new_bar: updates.append(has_new_bar)
            await wait_for(lambda: updates, timeout=5, what="a bar update")
            state = server.market.state(aapl.conId)
            await wait_for(lambda: abs(bars[-1].close - float(state.mid)) < 0.5, what="forming bar near the mid")
            ib.cancelHistoricalData(bars)
            await wait_for(lambda: not server.sessions[1].bar_streams, what="stream cancelled")
            ib.disconnect()

    asyncio.run(scenario())


def test_real_time_bars_arrive_every_five_seconds() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            [es] = await ib.qualifyContractsAsync(Future("ES", listed(server, "ES")[0].wire_contract_month, "CME"))
            bars = ib.reqRealTimeBars(es, 5, "TRADES", False)
            await wait_for(lambda: len(bars) >= 1, timeout=8, what="a 5-second bar")
            bar = bars[-1]
            assert bar.time.timestamp() % 5 == 0
            assert bar.low <= min(bar.open_, bar.close) and bar.high >= max(bar.open_, bar.close)
            assert bar.volume >= 0 and bar.count >= 0
            ib.cancelRealTimeBars(bars)
            await wait_for(lambda: not server.sessions[1].realtime_bars, what="stream cancelled")
            errors: list[int] = []
            ib.errorEvent += lambda req_id, code, *_: errors.append(code)
            ib.reqRealTimeBars(es, 10, "TRADES", False)
            await wait_for(lambda: errors == [321], what="error for a 10-second bar")
            ib.disconnect()

    asyncio.run(scenario())


def test_the_first_reply_carries_the_last_trade_and_its_time() -> None:
    """The whole quote comes at once, so a client never waits on the random walk for the last trade."""
    async def scenario() -> None:
        async with running_sim() as server:
            server.pause_market(True)  # no step, no trade: only the first reply can carry them
            ib = await connect(server, 1)
            [aapl] = await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD"))
            ticker = ib.reqMktData(aapl)
            await wait_for(lambda: ticker.lastTimestamp is not None, what="the last trade's time (tickString 45)")
            assert ticker.last == ticker.close == 231.5 and ticker.bid < ticker.ask
            assert ticker.volume == 0  # no trade today yet
            ib.disconnect()

    asyncio.run(scenario())
