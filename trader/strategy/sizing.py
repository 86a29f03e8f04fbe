"""From a strategy's target to an order: checking, sizing, rounding, the client order id.

Pure functions, no I/O, so every rule here is tested on its own:

- :func:`check_target` refuses what a strategy must not return: a non-number,
  NaN or infinity, a fraction outside -1..1, more shares than ``max_shares``.
- :func:`target_quantity` turns a target into a signed quantity with the
  strategy's sizing (a fixed quantity, a cash amount at the current price, a
  percent of equity), rounded toward zero to the lot.
- :func:`order_for` compares that quantity with the strategy's position in
  the instrument and returns the ``place_order`` arguments of the difference,
  or None when there is nothing to do. A stop loss and take profit are
  attached only to an order that opens a position from flat: on an order that
  adds to or reverses a position they would protect the wrong quantity.
- :func:`client_order_id` is deterministic in (strategy, instrument, bar), so
  a restarted strategy service that evaluates the same bar again gets the
  order already placed back from the trader service instead of a second one.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

from trader.domain import Action
from trader.errors import ValidationError
from trader.strategy.base import StrategyConfig

__all__ = ["SignalError", "check_target", "client_order_id", "order_for", "target_quantity"]

_TOLERANCE = 1e-9
_HUNDRED = Decimal(100)


class SignalError(ValidationError):
    """A strategy returned a target the platform will not trade."""


def check_target(value: Any, config: StrategyConfig) -> float:
    """Return ``value`` as a float target, or raise SignalError saying what is wrong with it."""
    if isinstance(value, (bool, str, bytes)) or not hasattr(value, "__float__"):
        raise SignalError(f"target must be a number, got {type(value).__name__}")
    try:
        target = float(value)
    except (TypeError, ValueError) as exc:
        raise SignalError(f"target must be a number, got {value!r}") from exc
    if math.isnan(target):
        raise SignalError("target is NaN")
    if math.isinf(target):
        raise SignalError(f"target is {target}")
    if config.units == "fraction":
        if abs(target) > 1 + _TOLERANCE:
            raise SignalError(f"target {target:g} is outside -1..1 (units: fraction; use units: shares for share counts)")
        return max(-1.0, min(1.0, target))
    if config.max_shares is not None and abs(Decimal(repr(target))) > config.max_shares:
        raise SignalError(f"target {target:g} shares is beyond max_shares {config.max_shares}")
    return target


def _to_decimal(value: float) -> Decimal:
    return Decimal(repr(float(value)))


def target_quantity(target: float, config: StrategyConfig, *, price: Decimal | None = None,
                    equity: Decimal | None = None) -> Decimal:
    """Return the signed quantity ``target`` stands for under ``config``'s sizing.

    ``price`` is needed for cash and equity sizing, ``equity`` (the account's
    net liquidation) for equity sizing; missing or non-positive, it is a
    SignalError, as is a quantity the lot cannot express.
    """
    sizing = config.sizing
    t = _to_decimal(target)
    if config.units == "shares":
        raw = t
    elif sizing.kind == "quantity":
        raw = t * sizing.value
    else:
        if price is None or price <= 0:
            raise SignalError(f"{sizing.kind} sizing needs a positive price, got {price}")
        if sizing.kind == "cash":
            raw = t * sizing.value / price
        else:
            if equity is None or equity <= 0:
                raise SignalError(f"equity_percent sizing needs the account's equity, got {equity}")
            raw = t * sizing.value / _HUNDRED * equity / price
    try:
        lots = (abs(raw) / sizing.lot).to_integral_value(rounding=ROUND_DOWN)
    except InvalidOperation as exc:
        raise SignalError(f"cannot size target {target:g}: {exc}") from None
    quantity = lots * sizing.lot
    return quantity if raw >= 0 else -quantity


def client_order_id(strategy: str, instrument: str, bar_start_ns: int, attempt: int = 0) -> str:
    """Return the id of the order a strategy sends for ``instrument`` at the bar starting at ``bar_start_ns``.

    ``<strategy>.<10 hex>``: at most 35 characters, so a bracket's ``.sl``/``.tp``
    children still fit IB's orderRef. ``attempt`` tells apart more orders for one bar.
    """
    digest = hashlib.blake2b(f"{strategy}|{instrument}|{bar_start_ns}|{attempt}".encode(), digest_size=5)
    return f"{strategy}.{digest.hexdigest()}"


def strategy_of(client_order_id: str) -> str:
    """Return the strategy name a strategy order's client order id starts with."""
    return client_order_id.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class Trade:
    """What :func:`order_for` decided: the order's arguments and the quantities behind them."""

    request: dict[str, Any]
    current: Decimal
    target: Decimal


def order_for(config: StrategyConfig, strategy: str, instrument: str, *, current: Decimal, target: Decimal,
              coid: str) -> Trade | None:
    """Return the order taking ``current`` to ``target`` in ``instrument``, or None if they are equal."""
    delta = target - current
    if delta == 0:
        return None
    request: dict[str, Any] = {
        "symbol": instrument,
        "action": (Action.BUY if delta > 0 else Action.SELL).value,
        "quantity": abs(delta),
        "order_type": config.order_type.value,
        "tif": config.tif.value,
        "strategy": strategy,
        "client_order_id": coid,
    }
    if current == 0:
        if config.stop_loss_percent is not None:
            request["stop_loss_percent"] = config.stop_loss_percent
        if config.take_profit_percent is not None:
            request["take_profit_percent"] = config.take_profit_percent
    return Trade(request, current, target)
