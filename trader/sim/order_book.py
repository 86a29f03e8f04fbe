"""The matching engine's order book: every order it accepted, and indexes to the live ones.

The engine asks the same few questions on every order and every quote: which
orders of this instrument are still live, which are the children of this
parent, what did this client place. Scanning every order ever placed makes each
answer slower as the session ages, so :class:`OrderBook` keeps one index per
question and drops an order from the live indexes when it reaches a terminal
status (:meth:`OrderBook.retire`). The history (iterating the book) keeps every
order for the queries that must report it (completed orders, used order ids).

Orders arrive in perm id order (the engine assigns perm ids increasingly and
adds each order once), so every index iterates oldest first without sorting.
"""

from __future__ import annotations

from collections.abc import Iterator

from trader.sim.orders import OrderKey, SimOrder

__all__ = ["OrderBook"]


class OrderBook:
    """Every simulated order, oldest first, with the live ones indexed by instrument."""

    def __init__(self) -> None:
        self._all: dict[OrderKey, SimOrder] = {}
        self._by_client: dict[int, dict[int, SimOrder]] = {}  # client id -> order id -> order
        self._live: dict[int, SimOrder] = {}  # perm id -> order not done (held or working)
        self._live_by_conid: dict[int, dict[int, SimOrder]] = {}  # conid -> perm id -> live order
        # (client id, parent id) -> order id -> child
        self._children: dict[OrderKey, dict[int, SimOrder]] = {}
        self._last_order_id: dict[int, int] = {}  # client id -> highest order id used
        self._last_perm_id = 0

    def __len__(self) -> int:
        return len(self._all)

    def __iter__(self) -> Iterator[SimOrder]:
        """Iterate every order ever added, oldest first."""
        return iter(self._all.values())

    def get(self, key: OrderKey) -> SimOrder | None:
        return self._all.get(key)

    def add(self, sim: SimOrder) -> None:
        """Add a new order, live until :meth:`retire`; its perm id must be the highest yet."""
        if sim.key in self._all:
            raise ValueError(f"order {sim.key} is already in the book")
        if sim.perm_id <= self._last_perm_id:
            raise ValueError(f"perm id {sim.perm_id} is not above {self._last_perm_id}: "
                             "the book would no longer be oldest first")
        self._last_perm_id = sim.perm_id
        self._all[sim.key] = sim
        self._by_client.setdefault(sim.client_id, {})[sim.order_id] = sim
        last = self._last_order_id.get(sim.client_id, 0)
        self._last_order_id[sim.client_id] = max(last, sim.order_id)
        if sim.ticket.parent_id:
            self._children.setdefault((sim.client_id, sim.ticket.parent_id), {})[sim.order_id] = sim
        if not sim.order.is_done:
            self._live[sim.perm_id] = sim
            self._live_by_conid.setdefault(sim.instrument.conid, {})[sim.perm_id] = sim

    def retire(self, sim: SimOrder) -> None:
        """Drop ``sim`` from the live indexes if it is done; the history keeps it."""
        if not sim.order.is_done:
            return
        self._live.pop(sim.perm_id, None)
        on_conid = self._live_by_conid.get(sim.instrument.conid)
        if on_conid is not None:
            on_conid.pop(sim.perm_id, None)

    def reparent(self, sim: SimOrder, old_parent_id: int) -> None:
        """Move ``sim`` between parents' children after a modification changed its parent id."""
        if old_parent_id == sim.ticket.parent_id:
            return
        if old_parent_id:
            self._children.get((sim.client_id, old_parent_id), {}).pop(sim.order_id, None)
        if sim.ticket.parent_id:
            self._children.setdefault((sim.client_id, sim.ticket.parent_id), {})[sim.order_id] = sim

    def of_client(self, client_id: int) -> list[SimOrder]:
        """Return every order ``client_id`` placed, oldest first."""
        return list(self._by_client.get(client_id, {}).values())

    def last_order_id(self, client_id: int) -> int:
        """Return the highest order id ``client_id`` used (0 if none)."""
        return self._last_order_id.get(client_id, 0)

    def live(self) -> list[SimOrder]:
        """Return the orders not done (held or working), oldest first, as a copy to act on."""
        return list(self._live.values())

    def live_on(self, conid: int) -> list[SimOrder]:
        """Return the live orders of instrument ``conid``, oldest first (a copy)."""
        on_conid = self._live_by_conid.get(conid)
        return list(on_conid.values()) if on_conid else []

    def children(self, client_id: int, parent_id: int) -> list[SimOrder]:
        """Return the children of ``(client_id, parent_id)``, oldest first, done ones included."""
        found = self._children.get((client_id, parent_id))
        if not found:
            return []
        # A modification may have moved an older order here, behind younger ones.
        return sorted(found.values(), key=_perm_id)

    @property
    def live_count(self) -> int:
        """Return how many orders the live indexes hold: the most a quote or an OCA fill touches."""
        return len(self._live)


def _perm_id(sim: SimOrder) -> int:
    return sim.perm_id
