"""IB parsing, contracts and holdings: contracts, their details and lookups, positions, account values.

Pure: no I/O. A contract IB reports that the domain does not model (a FOP, a
BAG...) is a ValidationError.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import date, datetime, time
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ib_async

from trader.brokers.ib.parsing.values import (
    IB_RIGHTS,
    IB_SEC_TYPES,
    RIGHTS,
    SEC_TYPES,
    decimal_from_float,
    lookup,
    required_decimal,
)
from trader.brokers.records import ContractDetails, ContractQuery
from trader.domain import AccountValue, Contract, Position, SecType, checks
from trader.errors import ValidationError

__all__ = [
    "from_ib_account_value",
    "from_ib_contract",
    "from_ib_contract_details",
    "from_ib_portfolio_item",
    "from_ib_position",
    "per_unit_cost",
    "to_ib_contract",
    "to_ib_query",
    "tradable_ib_contract",
]

# Where an order for a contract IB sent without an exchange goes (portfolio updates carry none).
_SMART_ROUTED = frozenset({SecType.STK, SecType.OPT})


def _expiry(code: str, sec_type: SecType) -> tuple[date | None, str]:
    """Read ``YYYYMMDD`` or ``YYYYMM`` (a trailing time such as ``" 16:00 US/Eastern"`` is dropped).

    Return the expiry (the last trade date) and the contract month. A bare
    ``YYYYMM`` is a future's contract month (IB's field carries either), or
    for an option the first of that month.
    """
    text = code.strip().split(" ", 1)[0]
    if not text:
        return None, ""
    if len(text) == 6 and text.isdigit():
        if sec_type is SecType.FUT:
            return None, text
        text = f"{text}01"
    return checks.plain_date("IB lastTradeDateOrContractMonth", text), ""


def to_ib_contract(c: Contract) -> ib_async.Contract:
    """Return ``c`` as an ib_async Contract (``conId`` 0 when not yet qualified)."""
    multiplier = "" if c.multiplier is None else format(c.multiplier.normalize(), "f")
    return ib_async.Contract(
        secType=IB_SEC_TYPES[c.sec_type],
        conId=c.conid or 0,
        symbol=c.symbol,
        lastTradeDateOrContractMonth=c.contract_month if c.expiry is None else f"{c.expiry:%Y%m%d}",
        strike=0.0 if c.strike is None else float(c.strike),
        right=IB_RIGHTS[c.right],
        multiplier=multiplier,
        exchange=c.exchange,
        primaryExchange=c.primary_exchange,
        currency=c.currency,
        localSymbol=c.local_symbol,
        tradingClass=c.trading_class,
    )


def from_ib_contract(c: ib_async.Contract, contract_month: str = "") -> Contract:
    """Return the domain Contract for ib_async's ``c`` (a future's ``contract_month`` from its details, if known).

    Raise ValidationError for a secType the domain does not model (``"FOP"``,
    ``"BAG"``...) or a right or expiry IB should not send. Strike, right and
    expiry are taken only where the domain allows them (an OPT; a FUT's
    expiry), since IB fills them with placeholders (strike 0, right ``"?"``)
    for other kinds. A future's contract month is ``contract_month`` when
    given (IB's ContractDetails.contractMonth), else what the contract itself
    says (see :class:`~trader.domain.Contract`). An empty exchange (portfolio updates carry none) becomes
    ``"SMART"`` for stocks and options, else the primary exchange if known.
    """
    sec_type = lookup(SEC_TYPES, c.secType, "secType")
    multiplier = c.multiplier.strip()
    is_option = sec_type is SecType.OPT
    fallback = "SMART" if sec_type in _SMART_ROUTED else c.primaryExchange or "SMART"
    right = lookup(RIGHTS, c.right.strip().upper(), "right") if is_option else None
    expiry, month = None, ""
    if sec_type in (SecType.FUT, SecType.OPT):
        expiry, month = _expiry(c.lastTradeDateOrContractMonth, sec_type)
    if sec_type is SecType.FUT and contract_month.strip():
        month = contract_month.strip()[:6]  # IB writes YYYYMM
    strike = decimal_from_float(c.strike) if is_option else None
    return Contract(
        c.symbol,
        sec_type,
        exchange=c.exchange or fallback,
        primary_exchange=c.primaryExchange,
        currency=c.currency,
        expiry=expiry,
        contract_month=month,
        strike=strike or None,  # IB writes "no strike" as 0.0
        right=right,
        multiplier=None if multiplier in ("", "0") else checks.decimal("Contract.multiplier", multiplier),
        local_symbol=c.localSymbol,
        trading_class=c.tradingClass,
        conid=c.conId or None,
    )


class _IbContract(ib_async.Contract):
    """An ib_async Contract whose repr names the contract rather than listing its non-default fields.

    Equality and hashing stay ib_async's (by conId). The Trade that ib_async
    formats for its log on each placed order and each status report holds the
    contract, and its repr compares every field with its default: 13 us warm,
    over 100 us cold, twice per order.
    """

    def __repr__(self) -> str:
        return (f"Contract(conId={self.conId}, secType={self.secType!r}, symbol={self.symbol!r}, "
                f"localSymbol={self.localSymbol!r}, exchange={self.exchange!r}, currency={self.currency!r})")

    __str__ = __repr__


def tradable_ib_contract(c: ib_async.Contract) -> ib_async.Contract:
    """Return a copy of IB's (qualified) contract ``c`` to place orders with: the same fields, a short repr."""
    return _IbContract(**{f.name: getattr(c, f.name) for f in dataclasses.fields(c)})


def to_ib_query(q: ContractQuery) -> ib_async.Contract:
    """Return the ib_async contract that asks IB's contract details for what ``q`` names."""
    return ib_async.Contract(
        symbol=q.symbol, secType=IB_SEC_TYPES[q.sec_type], exchange=q.exchange, currency=q.currency,
        lastTradeDateOrContractMonth=q.expiry, localSymbol=q.local_symbol, right=q.right,
        strike=0.0 if q.strike is None else float(q.strike))


def from_ib_contract_details(details: ib_async.ContractDetails) -> ContractDetails:
    """Return IB's ``details`` of a qualified contract: the domain contract (a future's key by its
    ``contractMonth``), its tick (0.01 if IB gives none) and minimum size (1 if none); ValidationError
    for a contract the domain cannot read."""
    if details.contract is None:
        raise ValidationError("IB contract details without a contract")
    tick = decimal_from_float(details.minTick) or Decimal("0.01")
    size = details.minSize
    min_size = decimal_from_float(size) if size and size > 0 else None
    contract = from_ib_contract(details.contract, details.contractMonth or "")
    last_trade = _last_trade(contract.expiry, details.lastTradeTime or "", details.timeZoneId or "")
    return ContractDetails(contract, tick, min_size or Decimal(1), details.longName or "", last_trade)


def _last_trade(expiry: date | None, clock: str, zone: str) -> datetime | None:
    """Return the moment trading stops: the expiry day at IB's lastTradeTime (``08:30[:00]``) in its timeZoneId."""
    digits = clock.replace(":", "").strip()
    if expiry is None or not digits.isdigit() or len(digits) not in (4, 6) or not zone:
        return None
    try:
        at = time(int(digits[:2]), int(digits[2:4]), int(digits[4:6] or 0), tzinfo=ZoneInfo(zone))
    except (ValueError, ZoneInfoNotFoundError):
        return None
    return datetime.combine(expiry, at)


def per_unit_cost(avg_cost: Decimal, contract: Contract) -> Decimal:
    """Return IB's average cost per unit of the price: IB's includes the multiplier (ES's 296052.25 is 5921.045)."""
    return avg_cost / contract.multiplier if contract.multiplier else avg_cost


def from_ib_position(p: ib_async.Position) -> Position:
    """Return the domain Position for ib_async's ``p`` (no market values: IB sends none), its cost per unit."""
    contract = from_ib_contract(p.contract)
    return Position(
        p.account,
        contract,
        required_decimal("position size", p.position),
        per_unit_cost(required_decimal("position avgCost", p.avgCost), contract),
    )


def from_ib_portfolio_item(item: ib_async.PortfolioItem) -> Position:
    """Return the domain Position, market values included, for ib_async's ``item``, its cost per unit."""
    contract = from_ib_contract(item.contract)
    return Position(
        item.account,
        contract,
        required_decimal("portfolio position", item.position),
        per_unit_cost(required_decimal("portfolio averageCost", item.averageCost), contract),
        market_price=decimal_from_float(item.marketPrice),
        market_value=decimal_from_float(item.marketValue),
        unrealized_pnl=decimal_from_float(item.unrealizedPNL),
        realized_pnl=decimal_from_float(item.realizedPNL),
    )


def gross_market_value(items: Iterable[ib_async.PortfolioItem]) -> Decimal:
    """Return the sum of |market value| over ``items``, whatever their contract (a FOP, a BAG, a BOND too).

    The domain models only some instruments (:func:`from_ib_portfolio_item`
    refuses the others), but every holding is exposure: none is left out here.
    A value IB does not give (NaN, unset) counts as 0.
    """
    return sum((abs(decimal_from_float(item.marketValue) or Decimal(0)) for item in items), Decimal(0))


def from_ib_account_value(v: ib_async.AccountValue) -> AccountValue:
    """Return the domain AccountValue for ib_async's ``v`` (its ``modelCode`` is dropped)."""
    return AccountValue(v.account, v.tag, v.value, v.currency)
