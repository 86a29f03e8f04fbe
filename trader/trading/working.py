"""What an order would add to the book: the order about to be sent, the working orders per contract, the exposure.

The risk gate (``risk.py``) reads these; the book keeps ``Working`` totals per
contract as orders change, so the gate's exposure costs the same at any size.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Final

from trader.domain import Order, checks
from trader.domain.enums import Action

__all__ = ["NOTHING_WORKING", "Exposure", "OrderIntent", "Working", "notional_price"]

_ZERO = Decimal(0)

@dataclass(frozen=True, slots=True)
class OrderIntent:
    """An order about to be sent, in exact Decimals.

    ``reference_price`` is the price the notional is computed at: the most the
    order can trade at, as far as is known (the caller's ``notional_price``).
    ``market_price`` anchors the price-deviation check; ``None`` means unknown,
    and then an order with a limit or stop price is refused while that check is
    on. A market price must be > 0, since a deviation is a fraction of it.
    """

    key: str
    symbol: str
    action: Action
    quantity: Decimal
    multiplier: Decimal
    reference_price: Decimal | None
    market_price: Decimal | None
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    reduces_only: bool = False
    local_symbol: str = ""  # the exchange's name of the contract (ESZ6), which the blocked/allowed lists may use

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        checks.text("OrderIntent.key", self.key)
        checks.text("OrderIntent.symbol", self.symbol)
        set_(self, "action", checks.enum_member("OrderIntent.action", Action, self.action))
        set_(self, "quantity", checks.decimal("OrderIntent.quantity", self.quantity, positive=True))
        set_(self, "multiplier",
             checks.decimal("OrderIntent.multiplier", self.multiplier, positive=True))
        for name in ("reference_price", "limit_price", "stop_price"):
            set_(self, name, checks.optional_decimal(f"OrderIntent.{name}", getattr(self, name)))
        set_(self, "market_price",
             checks.optional_decimal("OrderIntent.market_price", self.market_price, positive=True))
        checks.flag("OrderIntent.reduces_only", self.reduces_only)

    @property
    def signed_quantity(self) -> Decimal:
        """Return the quantity with the action's sign: what a fill adds to the position."""
        return self.quantity * self.action.sign

    @property
    def notional(self) -> Decimal | None:
        """Return |quantity x reference price x multiplier|, or None if the price is unknown."""
        if self.reference_price is None:
            return None
        return abs(self.quantity * self.reference_price * self.multiplier)


@dataclass(frozen=True, slots=True)
class Working:
    """What one contract's open orders would add if they filled: quantity and notional, buys and sells apart.

    Quantities are positive; a notional is remaining x price x multiplier at the
    order's own limit (else stop) price, so an order without one (market,
    trailing) adds its quantity but no notional. Bracket children are left out:
    they only close what their parent opened, and one fill of the OCA pair
    cancels the other.
    """

    buy: Decimal = _ZERO
    sell: Decimal = _ZERO
    buy_notional: Decimal = _ZERO
    sell_notional: Decimal = _ZERO

    @classmethod
    def of(cls, order: Order, unbooked: Decimal = _ZERO) -> Working:
        """Return an order's share: what it may still fill, and ``unbooked``, what its status says it filled that no
        booked fill holds yet (an order ends Filled before its executions arrive); empty for a bracket child.

        Without ``unbooked``, the gate would see neither the working order nor
        the fill between the Filled status and the execution's booking.
        """
        remaining = (_ZERO if order.is_done else order.remaining) + max(unbooked, _ZERO)
        if order.parent_id is not None or not remaining:
            return NOTHING_WORKING
        price = order.limit_price or order.stop_price
        notional = abs(remaining * price * (order.contract.multiplier or 1)) if price is not None else _ZERO
        if order.action is Action.BUY:
            return cls(buy=remaining, buy_notional=notional)
        return cls(sell=remaining, sell_notional=notional)

    def __bool__(self) -> bool:
        return bool(self.buy or self.sell)

    def plus(self, other: Working) -> Working:
        return Working(self.buy + other.buy, self.sell + other.sell, self.buy_notional + other.buy_notional,
                       self.sell_notional + other.sell_notional)

    def minus(self, other: Working) -> Working:
        return Working(self.buy - other.buy, self.sell - other.sell, self.buy_notional - other.buy_notional,
                       self.sell_notional - other.sell_notional)

    @property
    def worst_notional(self) -> Decimal:
        """Return the most these orders can add to |position value|: one side's notional, the larger.

        Whatever fills, the position ends within [held - sells, held + buys], so
        its size grows by at most the larger side.
        """
        return max(self.buy_notional, self.sell_notional)


NOTHING_WORKING: Final = Working()


@dataclass(frozen=True, slots=True)
class Exposure:
    """The book as the gate sees it: positions, working orders, gross exposure, day's P&L.

    ``working`` holds, per key, the open orders by side (``Working``). The gate
    counts them as if filled, but only in the order's own direction (a BUY adds
    the working buys, ignores working sells): a working order on the other side
    may be cancelled at any moment, so it must not make room.
    """

    positions: Mapping[str, Decimal]
    working: Mapping[str, Working]
    gross_exposure: Decimal
    daily_pnl: Decimal


def notional_price(action: Action, limit_price: Decimal | None, stop_price: Decimal | None,
                   *market: Decimal | None) -> Decimal | None:
    """Return the most an order can trade at, as far as is known, for its notional; None if nothing is known.

    A buy with a limit never pays more than it. Anything else may trade at the
    market (the ``market`` prices given: the quote, the side's bid or ask) or
    past its stop, and a sell limit below the market sells at the market.
    """
    if action is Action.BUY and limit_price is not None:
        return limit_price
    known = [p for p in (limit_price, stop_price, *market) if p is not None]
    return max(known) if known else None
