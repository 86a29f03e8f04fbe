"""Order requests: what a caller asks for, checked, and turned into the orders to send.

An :class:`OrderRequest` is the ``place_order`` RPC's arguments (and the CLI's
``trade`` options) as one strict model: unknown keys and bad values are a
``ValidationError`` naming the field. :func:`build_orders` turns a request, the
instrument's tick size and the market into domain :class:`~trader.domain.Order`s:
the entry, then the optional stop-loss and take-profit children of a bracket
(opposite side, same quantity, one OCA group so a fill of one cancels the
other). A price the caller typed (limit, stop, trail amount, a bracket's
stop-loss or take-profit price) off the instrument's tick grid is refused with
the nearest valid prices, as IB would refuse it (error 110), unless the
request asks ``round_prices``: then it goes to the next tick on the cautious
side (:func:`rounding_for`), never the nearest: a limit toward the passive side
(a buy down, a sell up), so it never pays more or takes less than asked; a stop
away from the market (a buy stop up, a sell stop down), so it never triggers
before the price asked is reached; a trail amount up, so it never trails closer
than asked. A bracket price derived from a percentage cannot be typed on the
grid, so it is always rounded, the same way. Every rounding is reported
(:attr:`BuiltOrders.rounded`), so the caller can show what was sent. A cash
``amount`` becomes a whole number of units at the reference price.

The contract hints a caller may add to a symbol (``sec_type``, ``exchange``,
``currency``, ``expiry``, ``strike``, ``right``) are defined once, in
:data:`HINTS`: :meth:`OrderRequest.hints` reads them off a request, and
:func:`takes_hints` declares them, typed, on an RPC method that takes
``**hints``, so the RPC layer checks them (a number for an expiry, an unknown
hint name) before the method runs.
"""

from __future__ import annotations

import inspect
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Decimal,
    InvalidOperation,
)
from typing import Any, TypeVar

import pydantic
from pydantic import Field, field_validator, model_validator

from trader.config import StrictModel
from trader.domain import Action, Contract, Order, OrderType, TimeInForce
from trader.errors import ValidationError

__all__ = ["HINTS", "BuiltOrders", "OrderRequest", "Rounded", "build_orders", "infer_order_type",
           "new_client_order_id", "on_tick", "parse_request", "round_to_tick", "rounding_for", "takes_hints"]

_HUNDRED = Decimal(100)
_NO_BRACKET = (None, None, None, None)
_F = TypeVar("_F", bound=Callable[..., Any])

#: The contract hints that narrow a symbol, with their types: the one definition (see :func:`takes_hints`).
HINTS: dict[str, Any] = {"sec_type": str | None, "exchange": str | None, "currency": str | None,
                         "expiry": str | None, "strike": Decimal | None, "right": str | None}


def takes_hints(fn: _F) -> _F:
    """Declare :data:`HINTS` as ``fn``'s keyword parameters, typed, in place of its ``**hints``.

    ``fn`` still receives them as ``**hints``; its signature and annotations
    (what the RPC registry checks a call against) name each hint with its type,
    so an unknown hint or a hint of the wrong type is a ValidationError.
    """
    signature = inspect.signature(fn)
    params = [p for p in signature.parameters.values() if p.kind is not inspect.Parameter.VAR_KEYWORD]
    params += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=hint)
               for name, hint in HINTS.items()]
    fn.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    fn.__annotations__ = {**{k: v for k, v in fn.__annotations__.items() if k != "hints"}, **HINTS}
    return fn


def new_client_order_id() -> str:
    """Return a fresh client order id (12 hex digits: short enough for IB's orderRef)."""
    return secrets.token_hex(6)


def round_to_tick(price: Decimal, tick: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Return ``price`` on the ``tick`` grid (by default the nearest tick, ties to even)."""
    if tick <= 0:
        raise ValidationError(f"tick size must be > 0, got {tick}")
    try:
        ticks = (price / tick).to_integral_value(rounding=rounding)
        if ticks <= 0:
            raise ValidationError(f"price {price} is below one tick ({tick})")
        return (ticks * tick).quantize(tick)
    except InvalidOperation:  # more digits than the decimal context holds: no real price
        raise ValidationError(f"price {price} is out of range for a tick of {tick}") from None


@dataclass(frozen=True, slots=True)
class Rounded:
    """A price that was put on the tick grid: which order and field, what was asked or derived, what is sent."""

    client_order_id: str
    field: str
    asked: Decimal
    sent: Decimal
    how: str


def rounding_for(action: Action, field_name: str) -> str:
    """Return how ``round_prices`` rounds ``field_name`` (limit_price, stop_price, trail_amount) of an ``action`` order.

    The cautious side, never the nearest tick: a limit toward the passive side
    (buy down, sell up: it never pays more, or takes less, than asked); a stop
    away from the market (buy stop up, sell stop down: it never triggers
    before the asked price); a trail amount up (never trails closer than asked).
    """
    buy = action is Action.BUY
    if field_name == "limit_price":
        return ROUND_FLOOR if buy else ROUND_CEILING
    if field_name == "stop_price":
        return ROUND_CEILING if buy else ROUND_FLOOR
    return ROUND_CEILING


def on_tick(price: Decimal, tick: Decimal, *, what: str, symbol: str, round_prices: bool,
            rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Return ``price`` on the ``tick`` grid; off it, round it as ``rounding`` says if asked, else refuse.

    ``symbol`` names the instrument in the message: its key (EUR.CASH.USD),
    not its bare symbol (EUR). The refusal is a ValidationError naming the nearest valid prices (its
    ``details``: ``field``, ``price``, ``tick``, ``nearest``), what a real IB
    would refuse with error 110.
    """
    if tick <= 0:
        raise ValidationError(f"tick size must be > 0, got {tick}")
    try:
        ticks = price / tick
        if ticks == ticks.to_integral_value():
            if price < tick:
                raise ValidationError(f"{what} {price} is below one tick ({tick})")
            return price.quantize(tick)
    except InvalidOperation:  # more digits than the decimal context holds: no real price
        raise ValidationError(f"{what} {price} is out of range for a tick of {tick}") from None
    if round_prices:
        return round_to_tick(price, tick, rounding)
    below = round_to_tick(price, tick, ROUND_FLOOR) if price > tick else None
    above = round_to_tick(price, tick, ROUND_CEILING)
    nearest = [p for p in (below, above) if p is not None]
    choices = " or ".join(format(p, "f") for p in nearest)
    raise ValidationError(
        f"{what} {format(price, 'f')} is not a multiple of {symbol}'s tick {format(tick, 'f')}: use {choices}, "
        f"or --round to take the cautious one",
        field=what.replace(" ", "_"), price=price, tick=tick, nearest=nearest)


def tick_rounding(rounding: str, tick: Decimal) -> str:
    """Return how a price was put on the grid, as the result's ``rounded`` says it."""
    way = {ROUND_FLOOR: "down to", ROUND_CEILING: "up to"}.get(rounding, "nearest")
    return f"{way} tick {format(tick, 'f')}"


def infer_order_type(prices: Mapping[str, Any]) -> OrderType:
    """Return the order type the prices given imply: a trail -> TRAIL, limit and stop -> STP_LMT, ... else MKT."""
    given = {k for k, v in prices.items() if v is not None}
    if given & {"trail_amount", "trail_percent"}:
        return OrderType.TRAIL
    if "limit_price" in given:
        return OrderType.STP_LMT if "stop_price" in given else OrderType.LMT
    return OrderType.STP if "stop_price" in given else OrderType.MKT


class OrderRequest(StrictModel):
    """One order as asked for; exactly one of ``quantity`` and ``amount``.

    A float (from JSON or msgpack) becomes a Decimal through its shortest
    text, so 0.1 stays 0.1: pydantic's own conversion, checked in the tests.
    """

    symbol: str = Field(min_length=1, description="a symbol (AAPL, ES, EUR.USD) or a contract key")
    action: Action
    quantity: Decimal | None = Field(None, gt=0)
    amount: Decimal | None = Field(None, gt=0, description="cash to trade; converted at the reference price")
    order_type: OrderType = OrderType.MKT
    limit_price: Decimal | None = Field(None, gt=0)
    stop_price: Decimal | None = Field(None, gt=0)
    trail_amount: Decimal | None = Field(None, gt=0)
    trail_percent: Decimal | None = Field(None, gt=0, lt=100)
    tif: TimeInForce = TimeInForce.DAY
    outside_rth: bool = False
    stop_loss: Decimal | None = Field(None, gt=0, description="a stop-loss price")
    stop_loss_percent: Decimal | None = Field(None, gt=0, lt=100)
    take_profit: Decimal | None = Field(None, gt=0, description="a take-profit price")
    take_profit_percent: Decimal | None = Field(None, gt=0)
    client_order_id: str | None = Field(None, min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")
    strategy: str = Field("manual", min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.:-]+$")
    sec_type: str | None = None
    exchange: str | None = None
    currency: str | None = None
    expiry: str | None = None
    account: str | None = Field(None, min_length=1, description="the account (several managed); None: the default")
    strike: Decimal | None = Field(None, gt=0, description="an option's strike")
    right: str | None = Field(None, pattern=r"^(?i:C|P|CALL|PUT)$", description="an option's right")
    round_prices: bool = Field(False, description="put typed prices off the tick grid on the cautious tick "
                                                  "(see rounding_for) instead of refusing them")

    @field_validator("action", "order_type", "tif", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper().replace(" ", "_") if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _infer_type(cls, data: Any) -> Any:
        """Without an order_type, infer it from the prices given."""
        if not isinstance(data, dict) or data.get("order_type") is not None:
            return data
        return {**data, "order_type": infer_order_type(data)}

    @model_validator(mode="after")
    def _consistent(self) -> OrderRequest:
        if (self.quantity is None) == (self.amount is None):
            raise ValueError("give exactly one of quantity and amount")
        if self.stop_loss is not None and self.stop_loss_percent is not None:
            raise ValueError("give stop_loss or stop_loss_percent, not both")
        if self.take_profit is not None and self.take_profit_percent is not None:
            raise ValueError("give take_profit or take_profit_percent, not both")
        return self

    @property
    def has_bracket(self) -> bool:
        return (self.stop_loss, self.stop_loss_percent, self.take_profit, self.take_profit_percent) != _NO_BRACKET

    def hints(self) -> dict[str, Any]:
        """Return the contract hints of the request (see :data:`HINTS`), for the resolver."""
        return {name: getattr(self, name) for name in HINTS}


def parse_request(data: dict[str, Any]) -> OrderRequest:
    """Return ``data`` as an OrderRequest, or raise ValidationError naming every bad field."""
    try:
        return OrderRequest.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(p) for p in error["loc"]) or "order"
            message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
            problems.append(f"{where}: {message}")
        raise ValidationError("invalid order: " + "; ".join(problems), fields=problems) from None


@dataclass(frozen=True, slots=True)
class BuiltOrders:
    """The entry order and its bracket children (stop loss first, then take profit), and the prices rounded."""

    entry: Order
    children: tuple[Order, ...] = ()
    rounded: tuple[Rounded, ...] = ()
    all: tuple[Order, ...] = field(init=False, repr=False, compare=False)  # the entry, then the children

    def __post_init__(self) -> None:
        object.__setattr__(self, "all", (self.entry, *self.children))


def build_orders(request: OrderRequest, contract: Contract, *, tick: Decimal, min_size: Decimal,
                 reference_price: Decimal | None, account: str | None = None) -> BuiltOrders:
    """Return the orders for ``request`` on ``contract``.

    ``reference_price`` is what a market order is expected to fill at (the ask
    to buy, the bid to sell); it converts ``amount`` into a quantity and anchors
    percentage stops and targets of market orders. A typed price off the tick
    grid is a ValidationError unless ``request.round_prices`` (then rounded as
    :func:`rounding_for` says, see :func:`on_tick`).
    """
    coid = request.client_order_id or new_client_order_id()
    multiplier = contract.multiplier or Decimal(1)
    rounded: list[Rounded] = []

    def typed(order_id: str, name: str, label: str, price: Decimal | None, action: Action) -> Decimal | None:
        if price is None:
            return None
        rounding = rounding_for(action, name)
        sent = on_tick(price, tick, what=label, symbol=contract.key, round_prices=request.round_prices,
                       rounding=rounding)
        if sent != price:
            rounded.append(Rounded(order_id, name, price, sent, tick_rounding(rounding, tick)))
        return sent

    limit = typed(coid, "limit_price", "limit price", request.limit_price, request.action)
    stop = typed(coid, "stop_price", "stop price", request.stop_price, request.action)
    trail_amount = typed(coid, "trail_amount", "trail amount", request.trail_amount, request.action)
    anchor = limit or stop or reference_price
    quantity = request.quantity
    if quantity is None:
        assert request.amount is not None
        if anchor is None:
            raise ValidationError(f"{contract.key}: no price to convert the amount {request.amount} at")
        units = (request.amount / (anchor * multiplier) / min_size).to_integral_value(rounding=ROUND_DOWN)
        quantity = units * min_size
        if quantity <= 0:
            raise ValidationError(f"amount {request.amount} buys less than {min_size} {contract.key} "
                                  f"at {anchor} (multiplier {multiplier})")
    elif (quantity / min_size) != (quantity / min_size).to_integral_value():
        raise ValidationError(f"quantity {quantity} is not a multiple of {contract.key}'s minimum size {min_size}")
    entry = Order(
        coid, contract, request.action, quantity, request.order_type,
        limit_price=limit, stop_price=stop, trail_amount=trail_amount, trail_percent=request.trail_percent,
        tif=request.tif, outside_rth=request.outside_rth, order_ref=request.strategy, account=account,
    )
    if not request.has_bracket:
        return BuiltOrders(entry, rounded=tuple(rounded))
    if anchor is None:
        raise ValidationError(f"{contract.key}: no price to set the bracket from")
    exit_action = Action.SELL if request.action is Action.BUY else Action.BUY
    sign = Decimal(1) if request.action is Action.BUY else Decimal(-1)
    oca = f"oca-{coid}"
    children: list[Order] = []

    def exit_price(order_id: str, field_name: str, label: str, price: Decimal | None,
                   percent: Decimal | None, direction: Decimal) -> Decimal | None:
        if percent is None:
            return typed(order_id, field_name, label, price, exit_action)
        # Derived from a percentage: no caller can type it on the grid, so it is rounded (cautiously), and said.
        derived = anchor * (1 + direction * percent / _HUNDRED)
        rounding = rounding_for(exit_action, field_name)
        sent = round_to_tick(derived, tick, rounding)
        side = "above" if direction > 0 else "below"
        if sent != derived:  # a price on the grid already was not rounded: say nothing of it
            rounded.append(Rounded(order_id, field_name, derived, sent,
                                   f"{format(percent, 'f')}% {side} {format(anchor, 'f')}, "
                                   f"{tick_rounding(rounding, tick)}"))
        return sent

    stop_loss = exit_price(f"{coid}.sl", "stop_price", "stop loss", request.stop_loss, request.stop_loss_percent,
                           -sign)
    if stop_loss is not None:
        if (stop_loss - anchor) * sign >= 0:
            raise ValidationError(f"stop loss {stop_loss} is not on the losing side of {anchor} for a {request.action}")
        children.append(Order(f"{coid}.sl", contract, exit_action, quantity, OrderType.STP, stop_price=stop_loss,
                              tif=TimeInForce.GTC, parent_id=coid, oca_group=oca, order_ref=request.strategy,
                              account=account, outside_rth=request.outside_rth))
    take_profit = exit_price(f"{coid}.tp", "limit_price", "take profit", request.take_profit,
                             request.take_profit_percent, sign)
    if take_profit is not None:
        if (take_profit - anchor) * sign <= 0:
            raise ValidationError(
                f"take profit {take_profit} is not on the winning side of {anchor} for a {request.action}")
        children.append(Order(f"{coid}.tp", contract, exit_action, quantity, OrderType.LMT, limit_price=take_profit,
                              tif=TimeInForce.GTC, parent_id=coid, oca_group=oca, order_ref=request.strategy,
                              account=account, outside_rth=request.outside_rth))
    return BuiltOrders(entry, tuple(children), tuple(rounded))
