"""Contract: what is traded, described the way IB describes an instrument.

A ``Contract`` is immutable and validated on construction: an option without a
strike or a future without an expiry never exists. Its :attr:`Contract.key` is
the instrument's id on the bus and in storage (``tick.<source>.<key>``).
"""

from __future__ import annotations

import re
from dataclasses import KW_ONLY, dataclass, field
from datetime import date
from decimal import Decimal

from trader.domain import checks
from trader.domain.enums import Right, SecType
from trader.errors import ValidationError

__all__ = ["Contract"]

# Dots separate a key's parts and topic levels, so a part may not contain one.
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def _key_part(value: str) -> str:
    return _UNSAFE.sub("_", value.strip())


def _strike_text(strike: Decimal) -> str:
    # 150 and 150.00 are the same strike: normalize, then write without exponent.
    return format(strike.normalize(), "f")


@dataclass(frozen=True, slots=True)
class Contract:
    """An instrument: a stock, future, option, currency pair, index or commodity.

    ``symbol`` and ``sec_type`` may be given by position, everything else by
    keyword. Enum fields accept their string values (``sec_type="FUT"``);
    ``expiry`` accepts a ``date`` or ``"YYYYMMDD"``; ``strike`` and
    ``multiplier`` are Decimals (an int or numeric string is converted, a float
    is refused). ``conid`` is IB's contract id once the contract is qualified.
    """

    symbol: str
    sec_type: SecType = SecType.STK
    _: KW_ONLY
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    expiry: date | None = None
    strike: Decimal | None = None
    right: Right | None = None
    multiplier: Decimal | None = None
    local_symbol: str = ""
    trading_class: str = ""
    conid: int | None = None
    key: str = field(init=False, repr=False, compare=False)
    """The instrument's stable id, usable as a bus topic level (see :meth:`_make_key`); computed once."""

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: coerced values are stored once, here
        checks.text("Contract.symbol", self.symbol)
        sec_type = checks.enum_member("Contract.sec_type", SecType, self.sec_type)
        set_(self, "sec_type", sec_type)
        checks.text("Contract.exchange", self.exchange)
        checks.text("Contract.primary_exchange", self.primary_exchange, allow_empty=True)
        checks.text("Contract.currency", self.currency)
        checks.text("Contract.local_symbol", self.local_symbol, allow_empty=True)
        checks.text("Contract.trading_class", self.trading_class, allow_empty=True)
        set_(self, "conid", checks.optional_integer("Contract.conid", self.conid, positive=True))
        if self.expiry is not None:
            set_(self, "expiry", checks.plain_date("Contract.expiry", self.expiry))
        strike = checks.optional_decimal("Contract.strike", self.strike, positive=True)
        set_(self, "strike", strike)
        set_(self, "right", checks.optional_enum_member("Contract.right", Right, self.right))
        multiplier = checks.optional_decimal("Contract.multiplier", self.multiplier, positive=True)
        set_(self, "multiplier", multiplier)
        self._check_kind(sec_type)
        # Read on every order, fill and tick: computed once here, not per access. Not an init
        # field, so the codec never carries it and a decoded or replaced Contract recomputes it.
        set_(self, "key", self._make_key())

    def _check_kind(self, sec_type: SecType) -> None:
        who = f"{sec_type} contract {self.symbol!r}"
        if sec_type is SecType.OPT:
            missing = [
                name
                for name, value in (
                    ("expiry", self.expiry),
                    ("strike", self.strike),
                    ("right", self.right),
                )
                if value is None
            ]
            if missing:
                raise ValidationError(f"{who} needs {', '.join(missing)}")
            return
        if self.strike is not None or self.right is not None:
            raise ValidationError(f"{who}: strike and right apply only to OPT contracts")
        if sec_type is SecType.FUT:
            if self.expiry is None and not self.local_symbol.strip():
                raise ValidationError(f"{who} needs an expiry or a local_symbol")
        elif self.expiry is not None:
            raise ValidationError(f"{who}: expiry applies only to FUT and OPT contracts")

    def _make_key(self) -> str:
        """Return the instrument's stable id, usable as a bus topic level.

        Only ``[A-Za-z0-9_.-]`` appear; dots separate parts, any other character
        of a part (a dot or a space in ``"BRK B"``) becomes ``_``. Forms:
        ``AAPL.STK``, ``SPX.IND``, ``EUR.CASH.USD``, ``ES.FUT.202612`` (contract
        month; ``ES.FUT.ESZ6`` when only the local symbol is known),
        ``AAPL.OPT.20261218.C150`` (strike ``152.5`` gives ``C152_5``). A
        currency other than USD is appended (``SAP.STK.EUR``) except for CASH,
        whose currency is always part of the key. The exchange and conid are
        not part of the key.
        """
        symbol = _key_part(self.symbol)
        sec_type = self.sec_type
        currency = _key_part(self.currency)
        if sec_type is SecType.CASH:
            return f"{symbol}.CASH.{currency}"
        if sec_type is SecType.FUT:
            if self.expiry is not None:
                base = f"{symbol}.FUT.{self.expiry:%Y%m}"
            else:
                base = f"{symbol}.FUT.{_key_part(self.local_symbol)}"
        elif sec_type is SecType.OPT:
            assert self.expiry is not None and self.strike is not None and self.right is not None
            strike = _key_part(_strike_text(self.strike))
            base = f"{symbol}.OPT.{self.expiry:%Y%m%d}.{self.right}{strike}"
        else:
            base = f"{symbol}.{sec_type}"
        return base if currency == "USD" else f"{base}.{currency}"
