"""Book: replay from the journal, fill dedupe and counting, positions, working totals, waiting for orders to end."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis.asyncio

from trader.config import RiskSettings
from trader.domain import Action, Contract, Fill, Order, OrderStatus, OrderType
from trader.errors import NotFound, ValidationError
from trader.messaging import codec
from trader.trading.book import Book, never_sent, rebuild
from trader.trading.journal import Journal
from trader.trading.risk import RiskGate
from trader.trading.working import Working

AAPL = Contract("AAPL", "STK", conid=265598)
MSFT = Contract("MSFT", "STK", conid=272093)
ES = Contract("ES", "FUT", exchange="CME", expiry="20261218", multiplier=Decimal(50))
T0 = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
S = OrderStatus


def make_order(cid: str, qty: int = 10, *, contract: Contract = AAPL,
               action: Action = Action.BUY, minute: int = 0, **kwargs: Any) -> Order:
    return Order(cid, contract, action, Decimal(qty), created_at=T0 + timedelta(minutes=minute),
                 **kwargs)


def make_fill(exec_id: str, cid: str | None, qty: int | str, price: str, *,
              contract: Contract = AAPL, action: Action = Action.BUY, minute: int = 1,
              **kwargs: Any) -> Fill:
    return Fill(exec_id, cid, contract, action, Decimal(qty), Decimal(price),
                T0 + timedelta(minutes=minute), **kwargs)


def snap(order: Order, event: str = "status") -> dict[str, Any]:
    return {"type": "order", "order": dataclasses.replace(order), "event": event, "reason": ""}


def replay(entries: list[dict[str, Any]]) -> Book:
    book = Book()
    for entry in entries:
        book.apply(codec.decode(codec.encode(entry)))
    return book


def assert_same(a: Book, b: Book) -> None:
    assert a.orders() == b.orders()
    assert a.fills() == b.fills()
    assert a.positions() == b.positions()
    assert a.commissions() == b.commissions()


# --- replay ---------------------------------------------------------------------


def test_rebuild_from_the_redis_journal_equals_the_live_book(redis_server: Any) -> None:
    """The service's way: apply each change to the live book and journal the same entry."""
    live = Book()
    entries: list[dict[str, Any]] = []

    def record(entry: dict[str, Any]) -> None:
        live.apply(entry)
        entries.append(codec.decode(codec.encode(entry)))  # as journalled at this moment

    buy = make_order("buy1", 100, broker_order_id=1)
    record(snap(buy, "submitted"))
    sell = make_order("sell1", 30, contract=MSFT, action=Action.SELL, minute=1,
                      order_type=OrderType.LMT, limit_price=Decimal("410.5"), broker_order_id=2)
    record(snap(sell, "submitted"))
    record(snap(dataclasses.replace(live.order("buy1"), status=S.SUBMITTED, perm_id=11)))
    record({"type": "fill", "fill": make_fill("e1", "buy1", 40, "150.10", commission=Decimal("0.4"))})
    record(snap(live.order("buy1"), "fill"))
    # A status report first (it already says 100 filled), its fill afterwards.
    record(snap(dataclasses.replace(live.order("buy1"), status=S.FILLED,
                                    filled_quantity=Decimal(100), avg_fill_price=Decimal("150.16"))))
    record({"type": "fill", "fill": make_fill("e2", "buy1", 60, "150.20", minute=2)})
    record({"type": "fill", "fill": make_fill("e3", "sell1", 30, "410.5", contract=MSFT,
                                              action=Action.SELL, commission=Decimal("1.05"))})
    record({"type": "kill_switch", "engaged": True, "reason": "test"})
    record({"type": "fill", "fill": make_fill("e1", "buy1", 40, "150.10")})  # a repeat

    assert live.order("buy1").filled_quantity == Decimal(100)  # not 160
    assert live.order("buy1").avg_fill_price == Decimal("150.16")
    assert live.order("sell1").status is S.FILLED

    risk = gate()

    async def main() -> Book:
        client = redis.asyncio.Redis.from_url(redis_server.url)
        journal = Journal(client, "journal:book")
        for entry in entries:
            await journal.append(entry)
        book = await rebuild(journal, risk=risk)
        await journal.close()
        await client.aclose()
        return book

    rebuilt = asyncio.run(main())
    assert_same(rebuilt, live)
    assert risk.kill_switch_engaged and risk.kill_switch_reason == "test"
    assert rebuilt.positions() == {"AAPL.STK": Decimal(100), "MSFT.STK": Decimal(-30)}
    assert rebuilt.commissions() == Decimal("1.45")
    assert rebuilt.find(perm_id=11) == live.order("buy1")


def gate() -> RiskGate:
    return RiskGate(RiskSettings(), lambda: datetime.now(UTC))


class ListJournal:
    """A journal holding ``entries``, as Journal.entries yields them (decoded dicts with a type)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self._entries = entries

    async def entries(self) -> Any:
        for i, entry in enumerate(self._entries):
            yield f"{i}-0", entry


def test_rebuild_restores_the_kill_switch_and_leaves_only_never_sent_orders_resendable() -> None:
    def entry(cid: str, event: str, reason: str = "", **changes: Any) -> dict[str, Any]:
        return {"type": "order", "order": make_order(cid, 1, **changes), "event": event, "reason": reason}

    rejected = {"status": S.REJECTED}
    entries = [
        {"type": "order"},  # decodable but malformed: skipped, the restore goes on
        {"type": "order", "order": "not an order", "event": "rejected"},
        entry("refused", "rejected", "max_position", **rejected),  # refused by the gate, never sent
        entry("retried", "rejected", "max_position", **rejected),
        # its retry reached IB, the service died before journalling it, and reconcile adopted it
        entry("retried", "reconciled", "never_sent: ... -> None; adopted: ...", broker_order_id=7,
              status=S.SUBMITTED),
        entry("lost", "submitted", broker_order_id=8),
        entry("lost", "reconciled", "never_sent: {...} -> None", **rejected),  # the broker never had it
        entry("resent", "reconciled", "never_sent: {...} -> None", **rejected),
        entry("resent", "submitted", broker_order_id=9),
        entry("unsent", "submitted", broker_order_id=10),  # its send failed: the desk books it so
        entry("unsent", "not_sent", "not sent: ConnectionError: Not connected", **rejected),
        {"type": "kill_switch", "engaged": True, "reason": "first"},
        {"type": "kill_switch", "engaged": False, "reason": ""},
        {"type": "kill_switch", "engaged": True, "reason": "panic"},
    ]
    risk = gate()
    book = asyncio.run(rebuild(ListJournal(entries), risk=risk))  # type: ignore[arg-type]
    assert {o.client_order_id for o in book.orders() if never_sent(o)} == {"refused", "lost", "unsent"}
    assert len(book) == 5 and book.order("retried").broker_order_id == 7
    assert risk.kill_switch_engaged and risk.kill_switch_reason == "panic"
    released = gate()
    asyncio.run(rebuild(ListJournal(entries[:-1]), risk=released))  # type: ignore[arg-type]
    assert not released.kill_switch_engaged


def test_fill_then_snapshot_counts_once() -> None:
    book = Book()
    book.put_order(make_order("c1", 10, status=S.SUBMITTED))
    assert book.add_fill(make_fill("e1", "c1", 4, "100"))
    order = book.order("c1")
    assert (order.status, order.filled_quantity, order.avg_fill_price) == \
        (S.PARTIALLY_FILLED, Decimal(4), Decimal(100))
    book.apply(snap(order))  # the service's snapshot after the fill
    assert book.add_fill(make_fill("e2", "c1", 6, "110"))
    order = book.order("c1")
    assert (order.status, order.filled_quantity, order.avg_fill_price) == \
        (S.FILLED, Decimal(10), Decimal(106))


def test_snapshot_first_then_fills_do_not_double_count() -> None:
    book = Book()
    book.put_order(make_order("c1", 10, status=S.PARTIALLY_FILLED, filled_quantity=Decimal(6),
                              avg_fill_price=Decimal("99.5")))
    assert book.add_fill(make_fill("e1", "c1", 4, "99"))
    assert book.add_fill(make_fill("e2", "c1", 2, "100"))
    order = book.order("c1")
    assert (order.filled_quantity, order.avg_fill_price) == (Decimal(6), Decimal("99.5"))
    assert book.add_fill(make_fill("e3", "c1", 4, "101"))  # beyond the snapshot: counted in
    order = book.order("c1")
    assert (order.status, order.filled_quantity) == (S.FILLED, Decimal(10))
    # The first 6 at the snapshot's average, then the new fill: (6*99.5 + 4*101) / 10
    assert order.avg_fill_price == Decimal("100.1")


def test_crash_between_fill_and_snapshot_still_books_the_fill() -> None:
    entries = [snap(make_order("c1", 5, status=S.SUBMITTED)),
               {"type": "fill", "fill": make_fill("e1", "c1", 5, "20")}]
    order = replay(entries).order("c1")
    assert (order.status, order.filled_quantity) == (S.FILLED, Decimal(5))


def test_stale_snapshot_is_corrected_by_the_next_fill() -> None:
    book = Book()
    book.put_order(make_order("c1", 10, status=S.SUBMITTED))
    book.add_fill(make_fill("e1", "c1", 4, "10"))
    book.apply(snap(make_order("c1", 10, status=S.SUBMITTED)))  # a late, stale report
    book.add_fill(make_fill("e2", "c1", 2, "13"))
    order = book.order("c1")
    assert (order.status, order.filled_quantity, order.avg_fill_price) == \
        (S.PARTIALLY_FILLED, Decimal(6), Decimal(11))


def test_fills_that_do_not_fit_are_recorded_but_not_counted() -> None:
    book = Book()
    book.put_order(make_order("c1", 10, status=S.SUBMITTED))
    book.put_order(make_order("c2", 10, status=S.CANCELLED, minute=1))
    assert book.add_fill(make_fill("wrong_side", "c1", 1, "10", action=Action.SELL))
    assert book.add_fill(make_fill("too_much", "c1", 11, "10"))
    assert book.order("c1").filled_quantity == 0
    assert book.add_fill(make_fill("late", "c2", 3, "10"))  # terminal: status kept
    assert (book.order("c2").status, book.order("c2").filled_quantity) == (S.CANCELLED, 3)
    assert book.add_fill(make_fill("orphan", None, 1, "10"))
    assert [f.exec_id for f in book.fills()] == ["wrong_side", "too_much", "late", "orphan"]
    assert book.positions() == {"AAPL.STK": Decimal(-1 + 11 + 3 + 1)}  # facts all the same


def test_fill_dedupe_and_late_commission() -> None:
    book = Book()
    book.put_order(make_order("c1", 10, status=S.SUBMITTED))
    assert book.add_fill(make_fill("e1", "c1", 10, "5"))
    assert not book.add_fill(make_fill("e1", "c1", 10, "5"))
    assert not book.add_fill(make_fill("e1", "c1", 10, "5", commission=Decimal("0.35")))
    assert book.order("c1").filled_quantity == 10
    assert len(book.fills()) == 1 and book.fills("c1")[0].commission == Decimal("0.35")
    assert book.commissions() == Decimal("0.35")
    assert book.fills("other") == []


def test_positions_across_keys_and_exact_commissions() -> None:
    book = Book()
    book.add_fill(make_fill("a", None, 100, "150", commission=Decimal("0.1")))
    book.add_fill(make_fill("b", None, 40, "151", action=Action.SELL, commission=Decimal("0.1")))
    book.add_fill(make_fill("c", None, 5, "410", contract=MSFT, action=Action.SELL,
                            commission=Decimal("0.1")))
    book.add_fill(make_fill("d", None, "0.5", "5000", contract=ES))
    book.add_fill(make_fill("e", None, "0.5", "5001", contract=ES, action=Action.SELL))
    book.add_fill(make_fill("f", None, 1, "150"))  # commission not reported yet
    assert book.positions() == {"AAPL.STK": Decimal(61), "MSFT.STK": Decimal(-5)}  # ES is flat
    assert book.commissions() == Decimal("0.3")
    assert Book().commissions() == Decimal(0)


def test_queries_and_indexes() -> None:
    book = Book()
    late = make_order("late", minute=5, status=S.FILLED, filled_quantity=Decimal(10),
                      avg_fill_price=Decimal(1))
    early = make_order("early", minute=1, broker_order_id=7, perm_id=70)
    book.put_order(late)
    book.put_order(early)
    assert [o.client_order_id for o in book.orders()] == ["early", "late"]
    assert [o.client_order_id for o in book.orders(open_only=True)] == ["early"]
    assert book.find(broker_order_id=7) is early and book.find(perm_id=70) is early
    assert book.find(broker_order_id=8) is None and book.find() is None
    book.put_order(dataclasses.replace(early, broker_order_id=8, perm_id=None))
    assert book.find(broker_order_id=7) is None and book.find(perm_id=70) is None
    assert book.find(broker_order_id=8).client_order_id == "early"
    with pytest.raises(NotFound, match="nope"):
        book.order("nope")


def test_order_sequence_follows_created_at_whatever_the_insertion_order() -> None:
    book = Book()
    for cid, minute in (("c", 3), ("a", 1), ("d", 3), ("b", 2), ("e", 0)):
        book.put_order(make_order(cid, minute=minute))
    assert [o.client_order_id for o in book.orders()] == ["e", "a", "b", "c", "d"]  # ties: insertion order
    book.put_order(dataclasses.replace(book.order("e"), created_at=T0 + timedelta(minutes=9)))
    assert [o.client_order_id for o in book.orders()] == ["a", "b", "c", "d", "e"]
    assert (len(book), book.open_count(), book.fill_count()) == (5, 5, 0)
    assert book.get("a") is book.order("a") and book.get("nope") is None


def brute_force_working(book: Book) -> dict[str, Working]:
    """The working totals the slow way, per key and side: what each order (bracket children aside) may still fill
    while open, and what its status says it filled that no booked fill holds yet."""
    totals: dict[str, Working] = {}
    for order in book.orders():
        if order.parent_id is not None:
            continue
        booked = sum((f.quantity for f in book.fills(order.client_order_id)), Decimal(0))
        quantity = (Decimal(0) if order.is_done else order.remaining) + max(order.filled_quantity - booked, Decimal(0))
        price = order.limit_price or order.stop_price or Decimal(0)
        mine = (Working(buy=quantity, buy_notional=quantity * price) if order.action is Action.BUY
                else Working(sell=quantity, sell_notional=quantity * price))
        totals[order.contract.key] = totals.get(order.contract.key, Working()).plus(mine)
    return {k: v for k, v in totals.items() if v}


def sides(book: Book) -> dict[str, tuple[Decimal, Decimal]]:
    """The working buys and sells per key."""
    return {key: (w.buy, w.sell) for key, w in book.working().items()}


def test_working_totals_follow_every_kind_of_change() -> None:
    book = Book()

    def check() -> None:
        assert book.working() == brute_force_working(book)
        assert book.open_count() == len(book.orders(open_only=True))

    book.put_order(make_order("b1", 100, status=S.SUBMITTED))
    book.put_order(make_order("s1", 30, action=Action.SELL, contract=MSFT, status=S.SUBMITTED))
    book.put_order(make_order("b2", 5, contract=MSFT))
    check()
    assert sides(book) == {"AAPL.STK": (Decimal(100), Decimal(0)), "MSFT.STK": (Decimal(5), Decimal(30))}
    book.add_fill(make_fill("e1", "b1", 40, "150"))  # counted into the order in place
    check()
    assert book.working()["AAPL.STK"].buy == Decimal(60)
    order = book.order("s1")  # the desk's way: change the order in place, then put it back
    order.transition(S.CANCELLED)
    book.put_order(order)
    check()
    book.put_order(dataclasses.replace(book.order("b2"), quantity=Decimal(25)))  # modified
    check()
    assert sides(book) == {"AAPL.STK": (Decimal(60), Decimal(0)), "MSFT.STK": (Decimal(25), Decimal(0))}
    book.put_order(dataclasses.replace(book.order("b2"), status=S.SUBMITTED,
                                       filled_quantity=Decimal(25), avg_fill_price=Decimal(1)))
    check()  # its status says filled, no execution booked yet: the 25 still count (the gate must see them)
    assert sides(book) == {"AAPL.STK": (Decimal(60), Decimal(0)), "MSFT.STK": (Decimal(25), Decimal(0))}
    book.add_fill(make_fill("e-b2", "b2", 25, "1", contract=MSFT))  # the execution arrives: now a position's
    check()
    assert sides(book) == {"AAPL.STK": (Decimal(60), Decimal(0))}
    book.add_fill(make_fill("e2", "b1", 60, "151", minute=2))  # fills it
    check()
    assert book.working() == {} and book.open_count() == 1


def test_working_totals_keep_sides_and_notional_apart_and_leave_bracket_children_out() -> None:
    book = Book()
    book.put_order(make_order("b", 100, order_type=OrderType.LMT, limit_price=Decimal("99.5"), status=S.SUBMITTED))
    book.put_order(make_order("b.sl", 100, action=Action.SELL, order_type=OrderType.STP, stop_price=Decimal(95),
                              parent_id="b", oca_group="oca-b", status=S.SUBMITTED))
    book.put_order(make_order("b.tp", 100, action=Action.SELL, order_type=OrderType.LMT, limit_price=Decimal(110),
                              parent_id="b", oca_group="oca-b", status=S.SUBMITTED))
    book.put_order(make_order("s", 40, action=Action.SELL, order_type=OrderType.LMT, limit_price=Decimal(101),
                              status=S.SUBMITTED))
    book.put_order(make_order("m", 7, contract=ES, status=S.SUBMITTED))  # a market order: no price, no notional
    assert book.working() == brute_force_working(book) == {
        "AAPL.STK": Working(buy=Decimal(100), sell=Decimal(40), buy_notional=Decimal(9950), sell_notional=Decimal(4040)),
        ES.key: Working(buy=Decimal(7)),
    }
    assert book.working(excluding="s")["AAPL.STK"] == Working(buy=Decimal(100), buy_notional=Decimal(9950))
    assert book.working(excluding="m").keys() == {"AAPL.STK"}
    assert book.working(excluding="nope") == book.working()


def test_working_totals_of_a_replayed_book_equal_the_live_ones() -> None:
    live = Book()
    entries: list[dict[str, Any]] = []
    for i in range(40):
        order = make_order(f"o{i}", 1 + i % 7, contract=(AAPL, MSFT, ES)[i % 3],
                           action=(Action.BUY, Action.SELL)[i % 2], minute=i, status=S.SUBMITTED)
        entries.append(snap(order, "submitted"))
        if i % 4 == 0:
            entries.append({"type": "fill", "fill": make_fill(f"e{i}", f"o{i}", 1, "10",
                                                              contract=order.contract,
                                                              action=order.action, minute=i)})
        if i % 5 == 0:
            entries.append(snap(dataclasses.replace(order, status=S.CANCELLED)))
    for entry in entries:
        live.apply(entry)
    assert live.working() == brute_force_working(live) == replay(entries).working()


def test_apply_ignores_other_and_malformed_entries() -> None:
    book = Book()
    book.apply({"type": "kill_switch", "engaged": True, "reason": "x"})
    book.apply({"type": "reconcile", "differences": []})
    book.apply({"type": "order", "order": "not an order"})
    book.apply({"type": "fill"})
    assert book.orders() == [] and book.fills() == []


def test_wait_done_is_woken_by_the_orders_updates_and_gives_up_after_its_timeout() -> None:
    book = Book()
    for cid in ("a", "b", "c"):
        book.put_order(make_order(cid, status=S.SUBMITTED))
    book.put_order(make_order("gone", status=S.CANCELLED))

    async def turns(waiting: asyncio.Task[bool], most: int = 5) -> bool:
        """Return whether ``waiting`` ends within a few turns of the loop (no poll's sleep)."""
        for _ in range(most):
            await asyncio.sleep(0)
            if waiting.done():
                return True
        return False

    async def main() -> None:
        assert await book.wait_done(["gone"], 0) is True  # already done: no wait at all
        waiting = asyncio.get_running_loop().create_task(book.wait_done(["a", "b", "gone"], 30))
        assert not await turns(waiting)
        book.put_order(dataclasses.replace(book.order("a"), status=S.CANCELLED))
        assert not await turns(waiting), "b still works"
        book.put_order(dataclasses.replace(book.order("b"), status=S.API_CANCELLED))
        assert await turns(waiting), "woken by b's update, not at a poll's next tick"
        assert waiting.result() is True
        assert await book.wait_done(["c"], 0.05) is False  # still working at the timeout
        with pytest.raises(NotFound):
            await book.wait_done(["nope"], 1)

    asyncio.run(main())
    assert book._waiters == []


def test_wait_done_waits_for_the_fills_a_status_reports_unless_told_done_is_enough() -> None:
    book = Book()
    order = make_order("f", status=S.SUBMITTED)
    book.put_order(order)
    # IB's Filled status comes before its execution: the order has ended, its fill is not booked yet
    book.put_order(dataclasses.replace(order, status=S.FILLED, filled_quantity=order.quantity,
                                       avg_fill_price=Decimal(100)))

    async def main() -> None:
        assert await book.wait_done(["f"], 0, booked=False) is True  # the kill switch counts ended orders
        waiting = asyncio.get_running_loop().create_task(book.wait_done(["f"], 30))  # a close sizes from fills
        await asyncio.sleep(0)
        assert not waiting.done()
        book.add_fill(Fill("e-f", "f", order.contract, order.action, order.quantity, Decimal(100),
                           datetime.now(UTC)))
        assert await asyncio.wait_for(waiting, 1) is True  # woken by the fill

    asyncio.run(main())
    assert book._waiters == []


def test_an_order_id_is_found_by_its_prefix_or_by_the_abbreviated_form_a_narrow_table_shows() -> None:
    book = Book()
    for minute, cid in enumerate(("96ca1f2e0d3c", "96cb00aa0d3c", "a1b2c3d4e5f6", "a1b2c3d4e5f6.sl", "a1b2ffff")):
        book.put_order(make_order(cid, minute=minute, parent_id="a1b2c3d4e5f6" if cid.endswith(".sl") else None))
    assert book.resolve_id("96ca1f2e0d3c") == "96ca1f2e0d3c"  # the exact id
    assert book.resolve_id("a1b2c3d4e5f6") == "a1b2c3d4e5f6"  # exact, though it prefixes its stop-loss leg
    assert book.resolve_id("96ca") == "96ca1f2e0d3c"  # a unique prefix
    assert book.resolve_id("96ca…0d3c") == book.resolve_id(" 96ca...0d3c ") == "96ca1f2e0d3c"  # abbreviated
    assert book.resolve_id("a1b2…e5f6.sl") == "a1b2c3d4e5f6.sl"
    with pytest.raises(ValidationError) as ambiguous:
        book.resolve_id("96c…0d3c")
    assert ambiguous.value.details["candidates"] == ["96ca1f2e0d3c", "96cb00aa0d3c"]
    assert "96ca1f2e0d3c, 96cb00aa0d3c" in str(ambiguous.value)
    assert book.resolve_id("a1b2c3") == "a1b2c3d4e5f6"  # an order and its bracket leg: the order
    with pytest.raises(ValidationError, match="names 2 orders: a1b2c3d4e5f6, a1b2ffff"):
        book.resolve_id("a1b2")  # two orders (and a leg of one)
    for unknown in ("96c", "ffff", "96ca…ffff", "…"):  # too short, no match, no match, nothing
        with pytest.raises(NotFound, match="no order"):
            book.resolve_id(unknown)


def test_an_order_adopted_already_filled_without_executions_adds_nothing_to_the_working_totals() -> None:
    # Yesterday's order, adopted at a reconcile: IB reports it Filled but no longer sends its executions.
    book = Book()
    book.put_order(make_order("old", 10, status=S.FILLED, filled_quantity=Decimal(10), avg_fill_price=Decimal(1)))
    assert book.working() == {}
