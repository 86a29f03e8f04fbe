"""Rolling contract series: tws-sim's futures and options, listed from the exchange's rule relative to today.

A catalogue of fixed dates runs out (a December contract stops trading in
December, and then ``ES`` names nothing). So configs/sim.yaml defines futures
and options as *series* (a root, its listed months, the rule of its last trade
day), and :func:`expand_series` lists the next few contracts of each as of a
day, as an exchange lists them. Each contract gets a conid derived from its
symbol and contract month (and, for an option, expiry, right and strike), so
the same contract has the same conid on every day and in every run.

The last-trade rules (weekdays only: exchange holidays are ignored, a
documented approximation):

* ``third_friday``: the third Friday of the contract month (CME's equity
  index futures ES and NQ; monthly equity options);
* ``nymex_crude``: three business days before the 25th of the month before the
  contract month, four when the 25th is not a business day (NYMEX CL: CLF7,
  January 2027, stops trading in December 2026);
* ``third_last_business_day``: the third last business day of the contract
  month (COMEX GC).
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from datetime import date, timedelta
from decimal import Decimal
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from trader.config import StrictModel
from trader.domain import Right, SecType
from trader.domain.contract_key import MONTH_CODES

__all__ = [
    "FutureSeries",
    "OptionLine",
    "OptionSeries",
    "check_last_trade_time",
    "contract_conid",
    "expand_series",
    "last_trade_day",
]

Rule = Literal["third_friday", "nymex_crude", "third_last_business_day"]


def _third_friday(year: int, month: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def _business_days_before(day: date, count: int) -> date:
    while count:
        day -= timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def _nymex_crude(year: int, month: int) -> date:
    before = date(year, month, 1) - timedelta(days=1)  # the month before the contract month
    the_25th = before.replace(day=25)
    return _business_days_before(the_25th, 3 if the_25th.weekday() < 5 else 4)


def _third_last_business_day(year: int, month: int) -> date:
    next_month = date(year + month // 12, month % 12 + 1, 1)
    return _business_days_before(next_month, 3)


_RULES: dict[str, Callable[[int, int], date]] = {
    "third_friday": _third_friday,
    "nymex_crude": _nymex_crude,
    "third_last_business_day": _third_last_business_day,
}


def last_trade_day(rule: str, contract_month: str) -> date:
    """Return the last trade day of the contract month ``YYYYMM`` under ``rule``."""
    return _RULES[rule](int(contract_month[:4]), int(contract_month[4:]))


def contract_conid(*parts: object) -> int:
    """Return the conid of the contract these parts name (symbol, month...): stable, in 500000000..1499999999."""
    text = "|".join(str(p) for p in parts).upper()
    return 500_000_000 + zlib.crc32(text.encode()) % 1_000_000_000


def check_last_trade_time(clock: str, zone: str) -> None:
    """Raise ValueError unless ``clock`` is empty or ``HH:MM[:SS]`` and ``zone`` a time zone id."""
    if clock and not re.fullmatch(r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d)?", clock):
        raise ValueError(f"last_trade_time must be HH:MM or HH:MM:SS, got {clock!r}")
    try:
        ZoneInfo(zone)
    except (ValueError, ZoneInfoNotFoundError):
        raise ValueError(f"unknown time_zone {zone!r}") from None


def _exact(value: object) -> object:
    # YAML reads 0.01 as a float; go through its text so the Decimal is exact.
    return Decimal(str(value)) if isinstance(value, float) else value


class FutureSeries(StrictModel):
    """A futures root and its listing rule: each listed month is one contract."""

    symbol: str
    exchange: str
    currency: str = "USD"
    months: str = Field(description="the listed month codes, e.g. HMUZ (quarterly) or FGHJKMNQUVXZ")
    rule: Rule
    last_trade_time: str = Field("", description="HH:MM on the last day, in time_zone (IB's lastTradeTime)")
    time_zone: str = Field("US/Central", description="the exchange's time zone (IB's timeZoneId)")
    listed: int = Field(3, ge=1, le=24, description="how many contracts are listed at once")
    multiplier: Decimal
    tick_size: Decimal = Field(gt=0)
    long_name: str = ""
    price: Decimal = Field(gt=0, description="the front contract's starting price")
    price_step: Decimal = Field(Decimal(0), description="added to the price per contract further out")
    volatility: float = Field(0.2, ge=0)
    quote_size: int = Field(5, ge=1, description="the front's; halved per contract further out (at least 1)")
    trade_size: int = Field(1, ge=1)

    @model_validator(mode="after")
    def _clock(self) -> FutureSeries:
        check_last_trade_time(self.last_trade_time, self.time_zone)
        return self

    @field_validator("months")
    @classmethod
    def _codes(cls, value: str) -> str:
        value = value.upper()
        if not value or any(code not in MONTH_CODES for code in value):
            raise ValueError(f"months must be futures month codes ({MONTH_CODES}): {value!r}")
        return value

    @field_validator("multiplier", "tick_size", "price", "price_step", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> object:
        return _exact(value)


class OptionLine(StrictModel):
    """One strike and right of an option series, with its market's parameters."""

    strike: Decimal = Field(gt=0)
    right: Right
    price: Decimal = Field(gt=0)
    volatility: float = Field(0.5, ge=0)
    spread_ticks: int = Field(1, ge=1)

    @field_validator("strike", "price", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> object:
        return _exact(value)


class OptionSeries(StrictModel):
    """Monthly options on a stock, expiring on the third Friday, at the listed strikes."""

    symbol: str
    long_name: str = ""
    expiries: int = Field(2, ge=1, le=12, description="how many monthly expiries are listed at once")
    multiplier: Decimal = Decimal(100)
    tick_size: Decimal = Field(Decimal("0.01"), gt=0)
    quote_size: int = Field(40, ge=1)
    trade_size: int = Field(5, ge=1)
    lines: list[OptionLine]

    @field_validator("multiplier", "tick_size", mode="before")
    @classmethod
    def _decimal(cls, value: object) -> object:
        return _exact(value)


def _months_from(year: int, month: int) -> list[tuple[int, int]]:
    return [(year + (month - 1 + i) // 12, (month - 1 + i) % 12 + 1) for i in range(36)]


def _future_entries(series: FutureSeries, today: date) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for year, month in _months_from(today.year, today.month):
        if MONTH_CODES[month - 1] not in series.months:
            continue
        contract_month = f"{year}{month:02d}"
        expiry = last_trade_day(series.rule, contract_month)
        if expiry < today:
            continue
        n = len(out)
        out.append({
            "conid": contract_conid(series.symbol, "FUT", contract_month),
            "symbol": series.symbol, "sec_type": SecType.FUT, "exchange": series.exchange,
            "currency": series.currency, "expiry": expiry, "contract_month": contract_month,
            "multiplier": series.multiplier, "local_symbol": f"{series.symbol}{MONTH_CODES[month - 1]}{year % 10}",
            "trading_class": series.symbol, "long_name": series.long_name, "tick_size": series.tick_size,
            "price": series.price + n * series.price_step, "volatility": series.volatility,
            "quote_size": max(1, series.quote_size >> n), "trade_size": series.trade_size,
            "last_trade_time": series.last_trade_time, "time_zone": series.time_zone,
        })
        if len(out) == series.listed:
            break
    return out


def _option_entries(series: OptionSeries, today: date) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    expiries = [d for d in (_third_friday(y, m) for y, m in _months_from(today.year, today.month)) if d >= today]
    for expiry in expiries[: series.expiries]:
        for line in series.lines:
            strike = format(line.strike.normalize(), "f")
            occ = f"{series.symbol:<6}{expiry:%y%m%d}{line.right}{int(line.strike * 1000):08d}"
            out.append({
                "conid": contract_conid(series.symbol, "OPT", f"{expiry:%Y%m%d}", line.right, strike),
                "symbol": series.symbol, "sec_type": SecType.OPT, "expiry": expiry, "strike": line.strike,
                "right": line.right, "multiplier": series.multiplier, "local_symbol": occ,
                "trading_class": series.symbol, "long_name": series.long_name, "tick_size": series.tick_size,
                "price": line.price, "volatility": line.volatility, "spread_ticks": line.spread_ticks,
                "quote_size": series.quote_size, "trade_size": series.trade_size,
                "last_trade_time": "16:00", "time_zone": "US/Eastern",
            })
    return out


def expand_series(futures: list[FutureSeries], options: list[OptionSeries], today: date) -> list[dict[str, object]]:
    """Return the instrument entries (InstrumentConfig's fields) the series list on ``today``.

    A contract is listed through its last trade day; the nearest ``listed``
    (``expiries``) of each series are.
    """
    entries: list[dict[str, object]] = []
    for future in futures:
        entries.extend(_future_entries(future, today))
    for option in options:
        entries.extend(_option_entries(option, today))
    return entries
