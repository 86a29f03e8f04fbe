"""Records: immutable snapshots of what happened (fills, positions, ticks, bars, account values).

Each record is a frozen slots dataclass, validated on construction, so a record
that exists is well formed. Money that is booked (fills, positions, account
values) is ``Decimal``; market data (ticks, bars) is ``float``, because it is
on the hot path and is never booked. Every time is an aware UTC datetime.
"""

from __future__ import annotations

import math
from dataclasses import KW_ONLY, dataclass
from datetime import UTC, datetime
from decimal import Decimal

from trader.domain import checks
from trader.domain.contract import Contract
from trader.domain.enums import Action
from trader.errors import ValidationError

__all__ = ["AccountValue", "Bar", "Fill", "Position", "Tick"]


def _contract(name: str, value: object) -> Contract:
    if not isinstance(value, Contract):
        raise ValidationError(f"{name} must be a Contract, got {type(value).__name__}")
    return value


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution reported by the broker.

    ``client_order_id`` is ``None`` for an execution of an order this platform
    did not place (entered in TWS by hand). ``commission`` is ``None`` until the
    broker reports it (IB sends it separately, after the execution).
    """

    exec_id: str
    client_order_id: str | None
    contract: Contract
    action: Action
    quantity: Decimal
    price: Decimal
    time: datetime
    _: KW_ONLY
    commission: Decimal | None = None
    broker_order_id: int | None = None
    perm_id: int | None = None
    account: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        checks.text("Fill.exec_id", self.exec_id)
        checks.optional_text("Fill.client_order_id", self.client_order_id)
        _contract("Fill.contract", self.contract)
        set_(self, "action", checks.enum_member("Fill.action", Action, self.action))
        set_(self, "quantity", checks.decimal("Fill.quantity", self.quantity, positive=True))
        # No sign check on the price: a fill is a fact reported by the broker,
        # and spreads (or crude oil in April 2020) do trade below zero.
        set_(self, "price", checks.decimal("Fill.price", self.price))
        set_(self, "commission", checks.optional_decimal("Fill.commission", self.commission))
        set_(self, "time", checks.utc_datetime("Fill.time", self.time))
        set_(
            self,
            "broker_order_id",
            checks.optional_integer("Fill.broker_order_id", self.broker_order_id),
        )
        set_(self, "perm_id", checks.optional_integer("Fill.perm_id", self.perm_id))
        checks.optional_text("Fill.account", self.account)

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity with the action's sign: what the fill adds to a position."""
        return self.quantity if self.action is Action.BUY else -self.quantity

    @property
    def notional(self) -> Decimal:
        """Return quantity x price (without the contract multiplier)."""
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class Position:
    """A holding in one account: signed quantity (negative is short) and average cost."""

    account: str
    contract: Contract
    quantity: Decimal
    avg_cost: Decimal
    _: KW_ONLY
    market_price: Decimal | None = None
    market_value: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    realized_pnl: Decimal | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        checks.text("Position.account", self.account)
        _contract("Position.contract", self.contract)
        set_(self, "quantity", checks.decimal("Position.quantity", self.quantity))
        set_(self, "avg_cost", checks.decimal("Position.avg_cost", self.avg_cost))
        for name in ("market_price", "market_value", "unrealized_pnl", "realized_pnl"):
            set_(self, name, checks.optional_decimal(f"Position.{name}", getattr(self, name)))

    @property
    def is_flat(self) -> bool:
        """Return whether nothing is held."""
        return self.quantity == 0


@dataclass(frozen=True, slots=True)
class Tick:
    """A top-of-book update for one instrument (``instrument`` is a ``Contract.key``).

    Fields the update does not carry are ``None``; a consumer keeps the last
    known value. ``volume`` is the session's cumulative volume.
    """

    instrument: str
    time: datetime
    bid: float | None = None
    ask: float | None = None
    last: float | None = None
    bid_size: float | None = None
    ask_size: float | None = None
    last_size: float | None = None
    volume: float | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        if type(self.instrument) is not str or not self.instrument:
            checks.text("Tick.instrument", self.instrument)
        time = self.time
        if type(time) is not datetime or time.tzinfo is not UTC:
            set_(self, "time", checks.utc_datetime("Tick.time", time))
        # Checking types is the whole cost on the hot path: one expression passes
        # the usual tick (floats and Nones); otherwise convert ints, refuse anything else.
        f = float
        if ((self.bid is None or type(self.bid) is f) and (self.ask is None or type(self.ask) is f)
                and (self.last is None or type(self.last) is f) and (self.bid_size is None or type(self.bid_size) is f)
                and (self.ask_size is None or type(self.ask_size) is f)
                and (self.last_size is None or type(self.last_size) is f)
                and (self.volume is None or type(self.volume) is f)):
            return
        for name in ("bid", "ask", "last", "bid_size", "ask_size", "last_size", "volume"):
            value = getattr(self, name)
            if value is not None and type(value) is not float:
                set_(self, name, checks.optional_float(f"Tick.{name}", value))

    @property
    def mid(self) -> float | None:
        """Return the bid/ask midpoint, or ``None`` if either side is missing."""
        if self.bid is None or self.ask is None:
            return None
        return (self.bid + self.ask) / 2.0

    @property
    def spread(self) -> float | None:
        """Return ask minus bid, or ``None`` if either side is missing."""
        if self.bid is None or self.ask is None:
            return None
        return self.ask - self.bid


@dataclass(frozen=True, slots=True)
class Bar:
    """An OHLCV bar of ``size`` starting at ``start``.

    ``size`` is the short form for bars the platform builds (``"5s"``, ``"1m"``,
    ``"1d"``; see trader.strategy.bars) and IB's spelling for bars as IB sent
    them (``"1 min"``, ``"1 day"``).
    """

    instrument: str
    start: datetime
    size: str
    open: float
    high: float
    low: float
    close: float
    volume: float
    count: int | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        checks.text("Bar.instrument", self.instrument)
        set_(self, "start", checks.utc_datetime("Bar.start", self.start))
        checks.text("Bar.size", self.size)
        for name in ("open", "high", "low", "close", "volume"):
            value = checks.optional_float(f"Bar.{name}", getattr(self, name))
            if value is None:
                raise ValidationError(f"Bar.{name} is required")
            set_(self, name, value)
        set_(self, "count", checks.optional_integer("Bar.count", self.count))
        high, low = self.high, self.low
        if not (math.isnan(high) or math.isnan(low)) and high < low:
            raise ValidationError(
                f"bar {self.instrument} {self.size} at {self.start}: high {high} < low {low}"
            )


@dataclass(frozen=True, slots=True)
class AccountValue:
    """One account summary value as IB reports it (``tag`` such as ``"NetLiquidation"``).

    ``value`` stays a string because IB's tags mix numbers and text
    (``"AccountType"``); :attr:`amount` reads it as a Decimal. ``currency`` is
    empty for tags that are not money.
    """

    account: str
    tag: str
    value: str
    currency: str = ""

    def __post_init__(self) -> None:
        checks.text("AccountValue.account", self.account)
        checks.text("AccountValue.tag", self.tag)
        checks.text("AccountValue.value", self.value, allow_empty=True)
        checks.text("AccountValue.currency", self.currency, allow_empty=True)

    @property
    def amount(self) -> Decimal:
        """Return ``value`` as a Decimal; raise ValidationError if it is not a number."""
        return checks.decimal(f"AccountValue {self.tag!r}", self.value)
