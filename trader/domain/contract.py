"""Contract: what is traded, described the way IB describes an instrument.

A ``Contract`` is immutable and validated on construction: an option without a
strike or a future without an expiry never exists. Its :attr:`Contract.key` is
the instrument's id on the bus and in storage (``tick.<source>.<key>``), in the
one grammar of :mod:`trader.domain.contract_key`.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from datetime import date
from decimal import Decimal

from trader.domain import checks
from trader.domain.contract_key import check_contract_month, contract_month_of, make_key
from trader.domain.enums import Right, SecType
from trader.errors import ValidationError

__all__ = ["Contract"]


@dataclass(frozen=True, slots=True)
class Contract:
    """An instrument: a stock, future, option, currency pair, index or commodity.

    ``symbol`` and ``sec_type`` may be given by position, everything else by
    keyword. Enum fields accept their string values (``sec_type="FUT"``);
    ``expiry`` accepts a ``date`` or ``"YYYYMMDD"``: it is the last trade date
    (of a future: IB's ``lastTradeDateOrContractMonth`` once qualified).
    ``contract_month`` (``"YYYYMM"``, futures only) is the month the contract
    delivers, which a futures trader names it by: CL's January 2027 contract
    (``CLF7``) has its last trade in December 2026. Left empty, it is read
    from a local symbol ending in a month code and year (``CLF7``, near the
    expiry), else it is the expiry's month. ``strike`` and ``multiplier`` are
    Decimals (an int or numeric string is converted, a float is refused).
    ``conid`` is IB's contract id once the contract is qualified.

    The key (:mod:`trader.domain.contract_key`) is
    ``SYMBOL.SECTYPE[.QUALIFIER...][.CURRENCY]``: ``AAPL.STK``, ``SPX.IND``,
    ``SAP.STK.EUR``, ``EUR.CASH.USD``, ``CL.FUT.202701`` (contract month),
    ``AAPL.OPT.20261218.C230``.
    """

    symbol: str
    sec_type: SecType = SecType.STK
    _: KW_ONLY
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    expiry: date | None = None
    contract_month: str = ""
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
        month = check_contract_month("Contract.contract_month", self.contract_month)
        if sec_type is SecType.FUT and not month and self.expiry is not None:
            month = contract_month_of(self.local_symbol, self.expiry) or f"{self.expiry.year:04d}{self.expiry.month:02d}"
        set_(self, "contract_month", month)
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
        if self.contract_month and sec_type is not SecType.FUT:
            raise ValidationError(f"{who}: contract_month applies only to FUT contracts")
        if sec_type is SecType.FUT:
            if self.expiry is None and not self.contract_month and not self.local_symbol.strip():
                raise ValidationError(f"{who} needs an expiry, a contract_month or a local_symbol")
        elif self.expiry is not None:
            raise ValidationError(f"{who}: expiry applies only to FUT and OPT contracts")

    def _make_key(self) -> str:
        """Return the instrument's stable id, usable as a bus topic level (see :mod:`~trader.domain.contract_key`)."""
        return make_key(self.symbol, self.sec_type, self.currency, contract_month=self.contract_month,
                        local_symbol=self.local_symbol, expiry=self.expiry, right=self.right, strike=self.strike)
