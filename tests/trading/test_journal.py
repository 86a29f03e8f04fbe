"""Journal against a real redis-server: append, paged reading, snapshots, corrupt entries."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio

from trader.domain import Action, Contract, Fill, Order, OrderStatus
from trader.errors import ConfigError, ProtocolError, ValidationError
from trader.messaging import codec
from trader.trading.journal import FIELD, Journal

AAPL = Contract("AAPL", "STK", conid=265598)
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def collect(journal: Journal, **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    return [item async for item in journal.entries(**kwargs)]


def client_for(server: Any, **kwargs: Any) -> redis.asyncio.Redis:
    return redis.asyncio.Redis.from_url(server.url, **kwargs)


def test_append_then_entries_oldest_first_with_domain_objects(redis_server: Any) -> None:
    order = Order("c1", AAPL, Action.BUY, Decimal(10), created_at=T0)
    fill = Fill("e1", "c1", AAPL, Action.BUY, Decimal(10), Decimal("150.25"), T0,
                commission=Decimal("1.0"))

    async def main() -> tuple[list[str], list[tuple[str, dict[str, Any]]], int]:
        client = client_for(redis_server)
        journal = Journal(client, "journal:test")
        ids = [
            await journal.append({"type": "order", "order": order, "event": "submitted",
                                  "reason": ""}),
            await journal.append({"type": "fill", "fill": fill, "time": T0}),
            await journal.append({"type": "kill_switch", "engaged": True, "reason": "test"}),
        ]
        got = await collect(journal)
        length = await journal.length()
        await journal.close()
        await client.aclose()
        return ids, got, length

    ids, got, length = run(main())
    assert length == 3
    assert [i for i, _ in got] == ids
    assert all(isinstance(i, str) for i in ids)
    assert [e["type"] for _, e in got] == ["order", "fill", "kill_switch"]
    assert got[0][1]["order"] == order
    assert got[1][1]["fill"] == fill
    assert got[1][1]["time"] == T0  # a given time is kept
    added = got[0][1]["time"]
    assert isinstance(added, datetime) and added.utcoffset() is not None  # added, aware


def test_append_many_stores_a_batch_in_order_or_nothing_if_one_cannot_be_encoded(redis_server: Any) -> None:
    async def main() -> tuple[list[Any], list[tuple[str, dict[str, Any]]]]:
        client = client_for(redis_server)
        journal = Journal(client, "journal:many")
        with pytest.raises(ValidationError):
            await journal.append_many([{"type": "order", "n": 0}, {"type": "order", "n": object()}])
        with pytest.raises(ValidationError):
            await journal.append_many([{"type": "order", "n": 0}, {"n": 1}])  # no type
        ids = await journal.append_many([{"type": "order", "n": n} for n in range(5)])
        got = await collect(journal)
        await journal.close()
        await client.aclose()
        return ids, got

    ids, got = run(main())
    assert [i for i, _ in got] == ids and all(isinstance(i, str) for i in ids)
    assert [e["n"] for _, e in got] == [0, 1, 2, 3, 4]  # the refused batches left nothing


def test_entries_are_paged_and_after_is_exclusive(redis_server: Any) -> None:
    async def main() -> None:
        client = client_for(redis_server)
        journal = Journal(client, "journal:paged")
        ids = [await journal.append({"type": "n", "n": n}) for n in range(5)]
        calls: list[dict[str, Any]] = []
        real_xrange = client.xrange

        async def counting_xrange(name: str, **kwargs: Any) -> Any:
            calls.append(kwargs)
            return await real_xrange(name, **kwargs)

        client.xrange = counting_xrange  # type: ignore[method-assign]
        got = await collect(journal, page=2)
        assert [e["n"] for _, e in got] == [0, 1, 2, 3, 4]
        assert [i for i, _ in got] == ids
        assert len(calls) == 3 and all(c["count"] == 2 for c in calls)

        calls.clear()
        after = await collect(journal, after=ids[1], page=2)
        assert [e["n"] for _, e in after] == [2, 3, 4]
        assert await collect(journal, after=ids[-1]) == []
        with pytest.raises(ValidationError):
            await collect(journal, page=0)
        await client.aclose()

    run(main())


def test_append_refuses_entries_without_type_or_unencodable(redis_server: Any) -> None:
    async def main() -> None:
        client = client_for(redis_server)
        journal = Journal(client, "journal:bad")
        with pytest.raises(ValidationError, match="type"):
            await journal.append({"order": 1})
        with pytest.raises(ValidationError):
            await journal.append({"type": "x", "when": datetime(2026, 1, 1)})  # naive
        with pytest.raises(ValidationError):
            await journal.append({"type": "x", "what": object()})
        assert await journal.length() == 0
        await journal.close()
        await client.aclose()

    run(main())


def test_corrupt_entries_are_skipped_counted_and_others_survive(redis_server: Any) -> None:
    async def main() -> None:
        client = client_for(redis_server)
        journal = Journal(client, "journal:corrupt")
        await journal.append({"type": "n", "n": 1})
        bad_ids = [
            await client.xadd("journal:corrupt", {FIELD: b"\xc1\xc1 not msgpack"}),
            await client.xadd("journal:corrupt", {b"other": b"x"}),  # no payload field
            await client.xadd("journal:corrupt", {FIELD: codec.encode([1, 2])}),  # not a dict
            await client.xadd("journal:corrupt", {FIELD: codec.encode({"n": 3})}),  # no type
        ]
        await journal.append({"type": "n", "n": 2})
        got = await collect(journal, page=2)
        assert [e["n"] for _, e in got] == [1, 2]
        assert journal.corrupt == len(bad_ids)
        assert await journal.length() == 6
        await collect(journal)  # reading again does not count the same entries twice
        assert journal.corrupt == len(bad_ids)
        await journal.close()
        await client.aclose()

    run(main())


def test_corrupt_entry_is_logged_with_its_stream_id(
    redis_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> str:
        client = client_for(redis_server)
        journal = Journal(client, "journal:logged")
        bad = await client.xadd("journal:logged", {FIELD: b"\xc1"})
        await collect(journal)
        await journal.close()
        await client.aclose()
        return bad.decode()

    bad_id = run(main())
    assert any(bad_id in r.getMessage() for r in caplog.records)


def test_snapshots_round_trip_and_missing_is_none(redis_server: Any) -> None:
    order = Order("c1", AAPL, Action.BUY, Decimal(10), created_at=T0,
                  status=OrderStatus.SUBMITTED, broker_order_id=7)

    async def main() -> None:
        client = client_for(redis_server)
        journal = Journal(client, "journal:snap")
        assert await journal.load_snapshot("snap:book") is None
        value = {"last_id": "1-0", "orders": [order], "cash": Decimal("1.10")}
        await journal.save_snapshot("snap:book", value)
        assert await journal.load_snapshot("snap:book") == value
        await client.set("snap:bad", b"\xc1")
        with pytest.raises(ProtocolError, match="snap:bad"):
            await journal.load_snapshot("snap:bad")
        await client.set("snap:list", codec.encode([1]))
        with pytest.raises(ProtocolError, match="snap:list"):
            await journal.load_snapshot("snap:list")
        await journal.close()
        await client.aclose()

    run(main())


def test_data_survives_closing_and_reopening_the_client(redis_server: Any) -> None:
    async def write() -> str:
        client = client_for(redis_server)
        journal = Journal(client, "journal:durable")
        await journal.append({"type": "kill_switch", "engaged": True, "reason": "r"})
        last = await journal.append({"type": "kill_switch", "engaged": False, "reason": "r"})
        await journal.save_snapshot("snap:durable", {"last_id": last})
        await journal.close()
        await client.aclose()
        return last

    async def read() -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any] | None, int]:
        client = client_for(redis_server)
        journal = Journal(client, "journal:durable")
        result = await collect(journal), await journal.load_snapshot("snap:durable"), \
            await journal.length()
        await journal.close()
        await client.aclose()
        return result

    last = run(write())
    got, snapshot, length = run(read())
    assert length == 2
    assert [e["engaged"] for _, e in got] == [True, False]
    assert snapshot == {"last_id": last}


def test_client_must_return_bytes(redis_server: Any) -> None:
    async def main() -> None:
        client = client_for(redis_server, decode_responses=True)
        with pytest.raises(ConfigError):
            Journal(client, "journal:x")
        await client.aclose()

    run(main())
