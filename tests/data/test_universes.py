"""Universes on a real ArcticDB (LMDB in a temp dir): CRUD, names, the stamp, and the index the Resolver asks first."""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.trading.broker_double import BrokerDouble
from trader.brokers.records import ContractDetails, ContractQuery
from trader.data import open_store
from trader.data.store import MarketStore
from trader.data.universe_index import UniverseIndex
from trader.data.universes import Member, Universes, check_name
from trader.domain import Contract, SecType
from trader.errors import Conflict, NotFound, ValidationError
from trader.trading.instruments import Resolver

NOW = datetime(2026, 12, 7, 15, tzinfo=UTC)


def details(symbol: str, conid: int, **kw: object) -> ContractDetails:
    contract = Contract(symbol, kw.pop("sec_type", SecType.STK), conid=conid,  # type: ignore[arg-type]
                        **{"primary_exchange": "NASDAQ", **kw})  # type: ignore[arg-type]
    return ContractDetails(contract, Decimal("0.01"), Decimal(1), f"{symbol} INC")


AAPL = details("AAPL", 265598)
MSFT = details("MSFT", 272093)
ESZ6 = ContractDetails(Contract("ES", SecType.FUT, exchange="CME", expiry=date(2026, 12, 18), multiplier=Decimal(50),
                                local_symbol="ESZ6", conid=501), Decimal("0.25"), Decimal(1), "E-mini S&P 500",
                       datetime(2026, 12, 18, 14, 30, tzinfo=UTC))
ESH7 = ContractDetails(Contract("ES", SecType.FUT, exchange="CME", expiry=date(2027, 3, 19), multiplier=Decimal(50),
                                local_symbol="ESH7", conid=502), Decimal("0.25"), Decimal(1), "E-mini S&P 500",
                       datetime(2027, 3, 19, 13, 30, tzinfo=UTC))


@pytest.fixture
def store(tmp_path: Path) -> MarketStore:
    return open_store(uri=f"lmdb://{tmp_path / 'arctic'}")


def test_create_get_list_add_remove_destroy(store: MarketStore) -> None:
    universes = Universes(store)
    assert universes.names() == [] and universes.stamp() == 0
    made = universes.create("tech", [Member.of(AAPL), Member.of(MSFT), Member.of(AAPL)])
    assert [m.key for m in made.members] == ["AAPL.STK", "MSFT.STK"]  # unique by conid, in order
    again = Universes(store).get("tech")  # read back from the store
    assert again == made and again.members[0].details() == AAPL
    first = universes.stamp()
    assert first > 0
    with pytest.raises(Conflict, match="tech exists"):
        universes.create("tech")
    universe, added = universes.add("tech", [Member.of(ESZ6), Member.of(MSFT)])
    assert [m.key for m in added] == ["ES.FUT.202612"] and len(universe.members) == 3
    assert universes.stamp() > first
    with pytest.raises(NotFound, match="not in universe tech: NOPE"):
        universes.remove("tech", ["msft", "NOPE"])
    assert len(universes.get("tech").members) == 3  # nothing removed when one ref is unknown
    universe, gone = universes.remove("tech", ["msft", "ESZ6"])  # by symbol (any case) and local symbol
    assert [m.key for m in gone] == ["MSFT.STK", "ES.FUT.202612"] and [m.key for m in universe.members] == ["AAPL.STK"]
    universes.create("b-2_x")
    assert universes.names() == ["b-2_x", "tech"]
    assert [(u.name, len(u.members)) for u in universes.all()] == [("b-2_x", 0), ("tech", 1)]
    universes.destroy("tech")
    assert universes.names() == ["b-2_x"]
    with pytest.raises(NotFound, match="no universe named tech"):
        universes.destroy("tech")
    with pytest.raises(NotFound):
        universes.get("tech")


@pytest.mark.parametrize("bad", ["", "a b", "x/y", "a.b", "x" * 65, "ü"])
def test_a_name_is_1_to_64_letters_digits_dash_underscore(bad: str, store: MarketStore) -> None:
    with pytest.raises(ValidationError, match="universe name"):
        check_name(bad)
    with pytest.raises(ValidationError):
        Universes(store).create(bad)
    assert check_name("A" * 64) == "A" * 64


def test_a_member_keeps_what_the_broker_said(store: MarketStore) -> None:
    Universes(store).create("f", [Member.of(ESZ6)])
    back = Universes(store).get("f").members[0].details()
    assert back == ESZ6  # contract (month, multiplier, local symbol, conid), tick, size, name, last trade
    with pytest.raises(ValidationError, match="no conid"):
        Member.of(ContractDetails(Contract("XYZ"), Decimal("0.01"), Decimal(1)))


def test_the_index_answers_broker_queries_and_reloads_when_the_stamp_moves(store: MarketStore) -> None:
    clock = [0.0]
    index = UniverseIndex(lambda: store, check_every=5.0, miss_every=0.5, clock=lambda: clock[0])
    universes = Universes(store)

    async def scenario() -> None:
        assert await index.find(ContractQuery("AAPL"), NOW) == []
        universes.create("tech", [Member.of(AAPL)])
        universes.create("futures", [Member.of(ESZ6), Member.of(ESH7), Member.of(AAPL)])
        assert await index.find(ContractQuery("AAPL"), NOW) == []  # checked a moment ago: not yet
        clock[0] = 0.6
        assert await index.find(ContractQuery("AAPL"), NOW) == [AAPL]  # a miss checks the stamp again
        assert index.universes_of("AAPL.STK") == ["futures", "tech"]
        loads = index.loads
        assert await index.find(ContractQuery("ES", SecType.FUT, exchange="CME"), NOW) == [ESZ6, ESH7]
        assert await index.find(ContractQuery("ES", SecType.FUT, expiry="202703"), NOW) == [ESH7]
        assert await index.find(ContractQuery("", SecType.FUT, local_symbol="ESZ6"), NOW) == [ESZ6]
        assert await index.find(ContractQuery("ES", SecType.FUT), datetime(2026, 12, 20, tzinfo=UTC)) == [ESH7]
        assert await index.find(ContractQuery("AAPL", SecType.STK, currency="EUR"), NOW) == []
        assert await index.find(ContractQuery("AAPL", SecType.FUT), NOW) == []
        assert index.loads == loads  # hits and misses alike: nothing changed, nothing loaded
        universes.destroy("futures")
        clock[0] = 10.0
        # a hit answers from memory at once, the due refresh running in the background
        assert await index.find(ContractQuery("ES", SecType.FUT), NOW) == [ESZ6, ESH7]
        assert index._running is not None
        await index._running
        assert await index.find(ContractQuery("ES", SecType.FUT), NOW) == []
        assert index.universes_of("AAPL.STK") == ["tech"]

    asyncio.run(scenario())


def test_the_resolver_answers_from_a_universe_without_the_broker(store: MarketStore) -> None:
    broker = BrokerDouble()
    broker.details = {"MSFT": [MSFT]}
    Universes(store).create("tech", [Member.of(AAPL), Member.of(ESZ6), Member.of(ESH7)])
    resolver = Resolver(broker, now=lambda: NOW, universes=UniverseIndex(lambda: store))

    async def scenario() -> None:
        assert await resolver.resolve("AAPL") == [AAPL]
        assert await resolver.resolve("ES") == [ESZ6]  # the front month, from the universe's contracts
        assert await resolver.resolve("ESH7") == [ESH7]
        assert resolver.broker_lookups == 0
        assert await resolver.resolve("MSFT") == [MSFT]  # not in a universe: the broker answers
        assert resolver.broker_lookups == 1
        assert resolver.universes_of("AAPL.STK") == ["tech"] and resolver.universes_of("MSFT.STK") == []

    asyncio.run(scenario())


def test_an_unreadable_store_leaves_resolving_to_the_broker() -> None:
    def broken() -> MarketStore:
        raise OSError("disk gone")

    index = UniverseIndex(broken)
    assert index.lookup(ContractQuery("AAPL"), NOW) == [] and index.universes_of("AAPL.STK") == []


def test_downloads_read_a_universe_through_this_module(store: MarketStore) -> None:
    """history_service's ``--universe`` and ``history update`` read members' keys with ``Universes.get``."""
    from trader.data.requests import universe_keys

    Universes(store).create("tech", [Member.of(MSFT), Member.of(AAPL)])
    assert universe_keys(store, "tech") == [Member.of(MSFT).key, Member.of(AAPL).key]
    with pytest.raises(NotFound, match="no universe named nope"):
        universe_keys(store, "nope")
    with pytest.raises(ValidationError, match="universe name"):
        universe_keys(store, "not/a/name")
    Universes(store).create("empty")
    with pytest.raises(ValidationError, match="no members"):
        universe_keys(store, "empty")


def test_a_slow_store_does_not_stall_the_event_loop(store: MarketStore) -> None:
    Universes(store).create("tech", [Member.of(AAPL)])
    slow = 0.6  # each store look-up takes this long (an S3 far away, or down and timing out)

    class SlowStore:
        def __getattr__(self, name: str) -> object:
            real = getattr(store, name)
            if not callable(real):
                return real

            def call(*args: object, **kwargs: object) -> object:
                time.sleep(slow)
                return real(*args, **kwargs)
            return call

    broker = BrokerDouble()
    broker.details = {"MSFT": [MSFT]}
    index = UniverseIndex(lambda: SlowStore(), check_every=0.0, miss_every=0.0)  # type: ignore[return-value]
    resolver = Resolver(broker, now=lambda: NOW, universes=index)

    async def scenario() -> float:
        stalls: list[float] = []

        async def ticker() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(0.01)
                stalls.append(time.monotonic() - before)

        beat = asyncio.create_task(ticker())
        assert await resolver.resolve("AAPL") == [AAPL]
        assert await resolver.resolve("MSFT") == [MSFT]  # a miss: the broker answers
        assert await resolver.resolve("AAPL.STK") == [AAPL]
        beat.cancel()
        return max(stalls, default=float("inf"))  # none: the loop never ran while resolving

    assert asyncio.run(scenario()) < slow / 2  # the loop ran on while the store was read


def _add_many(uri: str, first: int, count: int, go: Any) -> None:
    """Add ``count`` stocks (conids from ``first``) to universe u one at a time, from a process of its own."""
    universes = Universes(open_store(uri=uri))
    go.wait(30)
    for conid in range(first, first + count):
        universes.add("u", [Member.of(details(f"S{conid}", conid))])


def test_two_processes_adding_to_one_universe_lose_nothing(tmp_path: Path) -> None:
    uri = f"lmdb://{tmp_path / 'arctic'}"
    Universes(open_store(uri=uri)).create("u")
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    procs = [ctx.Process(target=_add_many, args=(uri, first, 40, go)) for first in (1000, 2000)]
    for proc in procs:
        proc.start()
    time.sleep(1.0)  # both have opened the store
    go.set()
    for proc in procs:
        proc.join(120)
        assert proc.exitcode == 0
    members = Universes(open_store(uri=uri)).get("u").members
    assert len(members) == 80, f"{80 - len(members)} additions lost"
