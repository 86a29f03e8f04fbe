"""Several accounts behind one tws-sim login (a financial advisor's): listed, traded and reported apart."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from ib_async import IB, MarketOrder, Stock

from tests.sim.simulator import connect, running_sim, sim_config, wait_for
from trader.errors import ConfigError, ValidationError
from trader.sim.catalogue import AccountConfig, SimConfig

ACCOUNTS = ["DU1234567", "DU7654321"]


def advisor_config() -> SimConfig:
    config = sim_config()
    return config.model_copy(update={"account": AccountConfig(id=ACCOUNTS[0], managed=ACCOUNTS[1:])})


def test_one_account_by_default_and_ids_are_unique() -> None:
    assert AccountConfig().ids == ["DU1234567"]
    with pytest.raises((ValueError, ValidationError, ConfigError)):
        AccountConfig(id="DU1", managed=["DU1"])


def test_every_managed_account_is_listed_traded_and_reported_apart() -> None:
    async def scenario() -> None:
        async with running_sim(advisor_config()) as server:
            ib = await connect(server, 3)
            assert ib.managedAccounts() == ACCOUNTS
            values = {(v.account, v.tag) for v in ib.accountValues()}  # reqAccountUpdatesMulti, per account
            assert {(a, "NetLiquidation") for a in ACCOUNTS} <= values

            aapl = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
            order = MarketOrder("BUY", 5, account=ACCOUNTS[1])
            ib.placeOrder(aapl, order)
            await wait_for(lambda: ib.positions(ACCOUNTS[1]), what="the second account's position")
            (pos,) = ib.positions(ACCOUNTS[1])
            assert (pos.contract.conId, pos.position) == (aapl.conId, 5)
            assert ib.positions(ACCOUNTS[0]) == []
            assert server.accounts[ACCOUNTS[1]].holdings[aapl.conId].quantity == Decimal(5)
            assert aapl.conId not in server.account.holdings
            assert {f.execution.acctNumber for f in ib.fills()} == {ACCOUNTS[1]}

            errors: list[tuple[int, str]] = []
            ib.errorEvent += lambda _req, code, text, _c: errors.append((code, text))
            ib.placeOrder(aapl, MarketOrder("BUY", 1, account="DU0000000"))
            await wait_for(lambda: errors, what="the refusal of an unknown account")
            assert errors[0][0] == 321 and "Invalid account code DU0000000" in errors[0][1]
            ib.disconnect()

    asyncio.run(scenario())


def test_account_updates_of_an_unknown_account_are_refused() -> None:
    async def scenario() -> None:
        async with running_sim(advisor_config()) as server:
            ib = IB()
            ib.RaiseRequestErrors = False
            errors: list[int] = []
            ib.errorEvent += lambda _req, code, _text, _c: errors.append(code)
            await ib.connectAsync("127.0.0.1", server.port, clientId=4, timeout=5, account=ACCOUNTS[1])
            assert {v.account for v in ib.accountValues() if v.tag == "NetLiquidation"} >= {ACCOUNTS[1]}
            ib.client.reqAccountUpdates(True, "DU0000000")
            await wait_for(lambda: 321 in errors, what="error 321")
            ib.disconnect()

    asyncio.run(scenario())


def test_a_what_if_order_is_costed_against_the_account_on_its_ticket() -> None:
    async def scenario() -> None:
        async with running_sim(advisor_config()) as server:
            ib = await connect(server, 4)
            aapl = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
            ib.placeOrder(aapl, MarketOrder("BUY", 100, account=ACCOUNTS[1]))
            await wait_for(lambda: ib.positions(ACCOUNTS[1]), what="the second account's position")
            # Selling 100 closes the second account's long (margin freed), and opens a short in the first.
            second = await asyncio.wait_for(
                ib.whatIfOrderAsync(aapl, MarketOrder("SELL", 100, account=ACCOUNTS[1])), 5)
            first = await asyncio.wait_for(
                ib.whatIfOrderAsync(aapl, MarketOrder("SELL", 100, account=ACCOUNTS[0])), 5)
            assert float(second.initMarginChange) < 0 < float(first.initMarginChange)
            ib.disconnect()

    asyncio.run(scenario())
