"""Selection: the book's filters, a strategy's holdings from its fills, and which account a command names."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.trading.broker_double import BrokerDouble
from tests.trading.test_book import AAPL, ES, MSFT, make_fill, make_order
from trader.brokers.records import ContractDetails
from trader.domain import Action, Contract
from trader.errors import NotFound, ValidationError
from trader.trading.book import Book
from trader.trading.instruments import Resolver
from trader.trading.selection import (
    choose_account,
    key_of,
    matches,
    select_orders,
    strategy_holdings,
)

ESH7 = Contract("ES", "FUT", exchange="CME", expiry="20270319", multiplier=Decimal(50), local_symbol="ESH7")


def test_a_contract_is_named_by_its_key_symbol_or_local_symbol_in_any_case() -> None:
    assert matches(AAPL, "aapl") and matches(AAPL, AAPL.key.lower()) and not matches(AAPL, "MSFT")
    assert matches(ES, "ES") and matches(ESH7, "es") and matches(ESH7, "ESH7") and not matches(ES, "ESH7")


def test_the_filters_combine_and_the_count_comes_last() -> None:
    orders = [make_order("a", contract=AAPL, order_ref="s1"), make_order("b", contract=MSFT, order_ref="s1"),
              make_order("c", contract=ES, order_ref="s2"), make_order("d", contract=ESH7, order_ref="s1"),
              make_order("e", contract=AAPL, order_ref="s1")]

    def ids(**filters: object) -> list[str]:
        return [o.client_order_id for o in asyncio.run(select_orders(orders, **filters))]  # type: ignore[arg-type]

    assert ids() == list("abcde") and ids(last=2) == ["d", "e"]
    assert ids(symbol="ES") == ["c", "d"] and ids(symbol="ES", strategy="s1") == ["d"]
    assert ids(strategy="s1", last=3) == ["b", "d", "e"] and ids(symbol="IBM") == []


def test_a_strategys_holdings_are_the_fills_of_its_own_orders() -> None:
    book = Book()
    for order in (make_order("a", 10, order_ref="s1"), make_order("b", 4, order_ref="s2"),
                  make_order("c", 10, order_ref="s1", action=Action.SELL),
                  make_order("d", 2, contract=MSFT, order_ref="s1", action=Action.SELL)):
        book.put_order(order)
    book.add_fill(make_fill("x1", "a", 10, "230"))
    book.add_fill(make_fill("x2", "b", 4, "230"))
    book.add_fill(make_fill("x3", "c", 3, "231", action=Action.SELL))
    book.add_fill(make_fill("x4", "d", 2, "400", contract=MSFT, action=Action.SELL))
    book.add_fill(make_fill("x5", None, 50, "230"))  # placed elsewhere: no strategy's
    assert {k: q for k, (_c, q) in strategy_holdings(book, "s1").items()} == {AAPL.key: 7, MSFT.key: -2}
    assert {k: q for k, (_c, q) in strategy_holdings(book, "s2").items()} == {AAPL.key: 4}
    book.add_fill(make_fill("x6", "c", 7, "231", action=Action.SELL))
    assert list(strategy_holdings(book, "s1")) == [MSFT.key]  # flat keys left out
    assert strategy_holdings(book, "nobody") == {}


def test_the_account_named_else_the_default_else_the_only_one() -> None:
    assert choose_account(None, ["DU1"], None) == "DU1"
    assert choose_account(None, [], None) is None  # the broker has not said yet
    assert choose_account(None, ["DU1", "DU2"], "DU2") == "DU2"
    assert choose_account("DU2", ["DU1", "DU2"], None) == "DU2"
    with pytest.raises(NotFound, match="unknown account 'DU9' .*manages DU1, DU2"):
        choose_account("DU9", ["DU1", "DU2"], "DU1")
    with pytest.raises(ValidationError, match="several accounts .*name one with --account"):
        choose_account(None, ["DU1", "DU2"], None)


EURUSD = Contract("EUR", "CASH", exchange="IDEALPRO", currency="USD", local_symbol="EUR.USD")


def test_a_name_no_order_matches_is_resolved_as_every_command_resolves_it() -> None:
    broker = BrokerDouble()
    broker.details["EUR"] = [ContractDetails(EURUSD, Decimal("0.00005"), Decimal(1))]
    broker.details["ES"] = [ContractDetails(ES, Decimal("0.25"), Decimal(1))]
    resolver = Resolver(broker)
    orders = [make_order("a", contract=AAPL), make_order("f", contract=EURUSD), make_order("c", contract=ES)]

    async def ids(symbol: str) -> list[str]:
        return [o.client_order_id for o in await select_orders(orders, symbol=symbol, resolver=resolver)]

    async def scenario() -> None:
        assert await ids("EURUSD") == ["f"] and await ids("eur/usd") == ["f"]
        assert await ids("ES Dec26") == ["c"]
        assert await ids("aapl") == ["a"]
        with pytest.raises(NotFound):
            await ids("NOSUCH")
        # a known key in any case, else what the resolver finds
        assert await key_of("aapl.stk", [AAPL.key], resolver) == AAPL.key
        assert await key_of("EURUSD", [AAPL.key], resolver) == EURUSD.key

    asyncio.run(scenario())


def test_a_strategys_holdings_are_kept_per_account() -> None:
    book = Book()
    book.put_order(make_order("a", 10, order_ref="s1", account="DU1"))
    book.put_order(make_order("b", 4, order_ref="s1", account="DU2"))
    book.add_fill(make_fill("x1", "a", 10, "230"))
    book.add_fill(make_fill("x2", "b", 4, "230"))
    assert {k: q for k, (_c, q) in strategy_holdings(book, "s1", "DU1").items()} == {AAPL.key: 10}
    assert {k: q for k, (_c, q) in strategy_holdings(book, "s1", "DU2").items()} == {AAPL.key: 4}
    assert {k: q for k, (_c, q) in strategy_holdings(book, "s1").items()} == {AAPL.key: 14}
