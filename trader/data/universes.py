"""Universes: named sets of instruments with their contract ids, kept as records in the market store.

A universe (``nasdaq``, ``my-futures``) lists its members as the broker
described them (contract key, conid, symbol, exchanges, currency, local
symbol, multiplier, tick, long name, last trade), so that what a universe
names is known without asking the broker again: the history downloads take
their instruments from it, and the Resolver answers a symbol from it first
(:class:`~trader.data.universe_index.UniverseIndex`). Each universe is one
record of kind ``universes`` (``store.put_record``); every change also
bumps the ``universes_stamp`` record, which a reader compares to know whether
to load them again.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from trader.brokers.records import ContractDetails
from trader.data.store import MarketStore
from trader.domain import Contract, Right, SecType, checks
from trader.errors import Conflict, NotFound, ValidationError

__all__ = ["KIND", "STAMP_KIND", "Member", "Universe", "Universes", "check_name"]

KIND = "universes"
STAMP_KIND = "universes_stamp"
EDIT_LOCK = "universes.edit"  # the lock a read-then-write of one universe holds (see Universes._editing)
_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def check_name(name: str) -> str:
    """Return ``name`` if it may name a universe (1-64 of letters, digits, ``_`` and ``-``); ValidationError if not."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValidationError(f"a universe name is 1-64 letters, digits, _ or -: {name!r} is not", name=name)
    return name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, slots=True)
class Member:
    """One instrument of a universe, as the broker described it (texts and numbers only: it is stored as is)."""

    key: str
    conid: int
    symbol: str
    sec_type: str
    exchange: str
    primary_exchange: str = ""
    currency: str = "USD"
    local_symbol: str = ""
    trading_class: str = ""
    multiplier: str = ""
    expiry: str = ""  # YYYY-MM-DD, a future's or an option's last trade date
    contract_month: str = ""
    strike: str = ""
    right: str = ""
    tick_size: str = "0.01"
    min_size: str = "1"
    long_name: str = ""
    last_trade: str = ""  # ISO time trading stops, when the broker said

    @classmethod
    def of(cls, details: ContractDetails) -> Member:
        """Return the member for the broker's ``details`` (a qualified contract)."""
        c = details.contract
        if not c.conid:
            raise ValidationError(f"{c.key} has no conid: only a qualified contract joins a universe", key=c.key)
        return cls(
            key=c.key, conid=c.conid, symbol=c.symbol, sec_type=str(c.sec_type), exchange=c.exchange,
            primary_exchange=c.primary_exchange, currency=c.currency, local_symbol=c.local_symbol,
            trading_class=c.trading_class, multiplier="" if c.multiplier is None else str(c.multiplier),
            expiry="" if c.expiry is None else c.expiry.isoformat(), contract_month=c.contract_month,
            strike="" if c.strike is None else str(c.strike), right="" if c.right is None else str(c.right),
            tick_size=str(details.tick), min_size=str(details.min_size), long_name=details.long_name,
            last_trade="" if details.last_trade is None else details.last_trade.isoformat())

    def details(self) -> ContractDetails:
        """Return the member as the broker's :class:`~trader.brokers.records.ContractDetails` (what resolve answers)."""
        sec_type = checks.enum_member("Contract.sec_type", SecType, self.sec_type)
        contract = Contract(
            self.symbol, sec_type, exchange=self.exchange, primary_exchange=self.primary_exchange,
            currency=self.currency, expiry=date.fromisoformat(self.expiry) if self.expiry else None,
            contract_month=self.contract_month, strike=Decimal(self.strike) if self.strike else None,
            right=checks.optional_enum_member("Contract.right", Right, self.right or None),
            multiplier=Decimal(self.multiplier) if self.multiplier else None,
            local_symbol=self.local_symbol, trading_class=self.trading_class, conid=self.conid)
        last = datetime.fromisoformat(self.last_trade) if self.last_trade else None
        return ContractDetails(contract, Decimal(self.tick_size), Decimal(self.min_size), self.long_name, last)

    def named_by(self, ref: str) -> bool:
        """Return whether ``ref`` (a contract key, a symbol or a local symbol, any case) names this member."""
        text = ref.strip().upper()
        return text in (self.key.upper(), self.symbol.upper(), self.local_symbol.upper())

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Member:
        """Return the member a stored record holds (fields it does not know are ignored)."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True, slots=True)
class Universe:
    """A named set of instruments, in the order they joined, with when it was created and last changed."""

    name: str
    members: tuple[Member, ...] = ()
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    source: str = ""  # how it was made: "bootstrap NASDAQ", "create"...

    def to_record(self) -> dict[str, Any]:
        """Return the record stored for it."""
        return {"name": self.name, "created": self.created, "updated": self.updated, "source": self.source,
                "members": [asdict(m) for m in self.members]}

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> Universe:
        """Return the universe a stored record holds."""
        return cls(str(data["name"]), tuple(Member.from_record(m) for m in data.get("members", [])),
                   str(data.get("created", "")), str(data.get("updated", "")), str(data.get("source", "")))

    def with_members(self, members: Iterable[Member]) -> Universe:
        """Return it with ``members`` (de-duplicated by conid, the first kept), updated now."""
        seen: set[int] = set()
        kept = []
        for member in members:
            if member.conid not in seen:
                seen.add(member.conid)
                kept.append(member)
        return replace(self, members=tuple(kept), updated=_now())


class Universes:
    """The universes of one market store: create, destroy, list, get, add, remove."""

    def __init__(self, store: MarketStore) -> None:
        self.store = store

    def names(self) -> list[str]:
        """Return every universe's name, sorted."""
        return self.store.records(KIND)

    def all(self) -> list[Universe]:
        """Return every universe."""
        return [self.get(name) for name in self.names()]

    def get(self, name: str) -> Universe:
        """Return the universe ``name``; NotFound if there is none."""
        try:
            return Universe.from_record(self.store.get_record(KIND, check_name(name)))
        except NotFound:
            raise NotFound(f"no universe named {name}", universe=name) from None

    def exists(self, name: str) -> bool:
        """Return whether a universe ``name`` exists."""
        return check_name(name) in self.names()

    def _editing(self, name: str) -> AbstractContextManager[None]:
        """Hold the universe's edit lock across a read and the write built on it (LMDB; S3 has none).

        Not the record's own writer lock, which ``put_record`` takes inside: a
        flock is per open file, so taking that twice in one process would wait
        on itself. Without it a ``universes add`` during a bootstrap lost one
        of the two changes.
        """
        locks = getattr(self.store, "locks", None)
        return locks.hold(EDIT_LOCK, name) if locks is not None else nullcontext()

    def put(self, universe: Universe) -> Universe:
        """Store ``universe`` as it is (replacing one of its name) and bump the stamp; return it."""
        self.store.put_record(KIND, check_name(universe.name), universe.to_record())
        self.store.put_record(STAMP_KIND, "stamp", {"stamp": time.time_ns()})
        return universe

    def create(self, name: str, members: Iterable[Member] = (), *, source: str = "create",
               replace_existing: bool = False) -> Universe:
        """Create the universe ``name`` with ``members``; Conflict if it exists (unless ``replace_existing``)."""
        check_name(name)
        with self._editing(name):
            if not replace_existing and self.exists(name):
                raise Conflict(f"a universe named {name} exists (destroy it first, or add to it)", universe=name)
            return self.put(Universe(name, source=source).with_members(members))

    def destroy(self, name: str) -> None:
        """Remove the universe ``name``; NotFound if there is none."""
        if not self.store.delete_record(KIND, check_name(name)):
            raise NotFound(f"no universe named {name}", universe=name)
        self.store.put_record(STAMP_KIND, "stamp", {"stamp": time.time_ns()})

    def add(self, name: str, members: Iterable[Member]) -> tuple[Universe, list[Member]]:
        """Add ``members`` to the universe ``name`` (those already in it are skipped); return it and those added."""
        members = list(members)
        with self._editing(name):
            universe = self.get(name)
            have = {m.conid for m in universe.members}
            added = []
            for member in members:
                if member.conid not in have:
                    have.add(member.conid)
                    added.append(member)
            if added:
                universe = self.put(universe.with_members([*universe.members, *added]))
        return universe, added

    def remove(self, name: str, refs: Iterable[str]) -> tuple[Universe, list[Member]]:
        """Remove the members each ref names (a key, symbol or local symbol) from ``name``; return it and those removed.

        NotFound, naming them, for refs that name no member (nothing is removed then).
        """
        refs = list(refs)
        with self._editing(name):
            universe = self.get(name)
            missing = [r for r in refs if not any(m.named_by(r) for m in universe.members)]
            if missing:
                raise NotFound(f"not in universe {name}: {', '.join(missing)}", universe=name, symbols=missing)
            gone = [m for m in universe.members if any(m.named_by(r) for r in refs)]
            kept = [m for m in universe.members if m not in gone]
            return self.put(universe.with_members(kept)), gone

    def stamp(self) -> int:
        """Return the stamp of the last change (0: never changed), which a reader compares to reload."""
        try:
            return int(self.store.get_record(STAMP_KIND, "stamp").get("stamp", 0))
        except NotFound:
            return 0
