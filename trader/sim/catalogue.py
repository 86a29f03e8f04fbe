"""The simulator's instrument catalogue, built from configs/sim.yaml (read by :mod:`trader.sim.config`).

It holds the contracts that do not expire and those the rolling series
(:mod:`trader.sim.series`) list as of the day tws-sim starts (and the next
ones as it runs). The settings' models are re-exported here, where callers
import them from. :class:`Catalogue` answers the contract look-ups TWS answers:
by conid, by a partial contract (``reqContractDetails``), by a symbol prefix
(``reqMatchingSymbols``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from trader.domain import Contract, SecType
from trader.errors import ConfigError, ValidationError
from trader.sim.config import (
    DEFAULT_SIM_CONFIG,
    AccountConfig,
    CommissionConfig,
    InstrumentConfig,
    MarketConfig,
    ReplayConfig,
    SimConfig,
    load_sim_config,
)
from trader.sim.series import expand_series
from trader.sim.universe_gen import generate

__all__ = [
    "DEFAULT_SIM_CONFIG",
    "AccountConfig",
    "Catalogue",
    "CommissionConfig",
    "ContractQuery",
    "InstrumentConfig",
    "MarketConfig",
    "ReplayConfig",
    "SimConfig",
    "SimInstrument",
    "load_sim_config",
]

@dataclass(frozen=True, slots=True)
class SimInstrument:
    """A catalogue entry: the contract as TWS describes it, and its market's parameters."""

    contract: Contract
    long_name: str
    tick_size: Decimal
    price: Decimal
    volatility: float
    spread_ticks: int
    quote_size: int
    trade_size: int
    min_size: Decimal
    last_trade_time: str = ""
    time_zone: str = "UTC"
    generated: bool = False  # from configs/sim.yaml's generated rules: quoted only once asked about

    @property
    def conid(self) -> int:
        assert self.contract.conid is not None
        return self.contract.conid

    @property
    def multiplier(self) -> Decimal:
        """Return the contract multiplier (1 when the contract has none)."""
        return self.contract.multiplier or Decimal(1)

    @property
    def last_trade(self) -> datetime | None:
        """Return when trading stops: the expiry at its last trade time in its time zone (else the day's end, UTC)."""
        expiry = self.contract.expiry
        if expiry is None:
            return None
        if self.last_trade_time:
            hour, minute, *rest = (int(p) for p in self.last_trade_time.split(":"))
            second = rest[0] if rest else 0
            return datetime.combine(expiry, time(hour, minute, second, tzinfo=ZoneInfo(self.time_zone)))
        return datetime.combine(expiry + timedelta(days=1), time(tzinfo=UTC))

    def expired(self, now: datetime) -> bool:
        """Return whether trading in it has stopped at ``now``: tws-sim neither quotes it nor takes orders."""
        last = self.last_trade
        return last is not None and now >= last

    @property
    def wire_expiry(self) -> str:
        """Return lastTradeDateOrContractMonth as TWS writes it (``YYYYMMDD`` or empty)."""
        expiry = self.contract.expiry
        return "" if expiry is None else expiry.strftime("%Y%m%d")

    @property
    def wire_contract_month(self) -> str:
        """Return ContractDetails.contractMonth as TWS writes it (``YYYYMM``: a future's own, an option's expiry month)."""
        return self.contract.contract_month or self.wire_expiry[:6]

    @property
    def wire_multiplier(self) -> str:
        multiplier = self.contract.multiplier
        return "" if multiplier is None else format(multiplier.normalize(), "f")

    @property
    def wire_strike(self) -> Decimal:
        return self.contract.strike if self.contract.strike is not None else Decimal(0)

    @property
    def wire_right(self) -> str:
        return "" if self.contract.right is None else str(self.contract.right)

    @classmethod
    def from_config(cls, cfg: InstrumentConfig) -> SimInstrument:
        """Build the entry; the contract's own checks apply (an option needs a strike...)."""
        local = cfg.local_symbol or (f"{cfg.symbol}.{cfg.currency}" if cfg.sec_type is SecType.CASH else cfg.symbol)
        contract = Contract(
            cfg.symbol,
            cfg.sec_type,
            exchange=cfg.exchange,
            primary_exchange=cfg.primary_exchange,
            currency=cfg.currency,
            expiry=cfg.expiry,
            contract_month=cfg.contract_month,
            strike=cfg.strike,
            right=cfg.right,
            multiplier=cfg.multiplier,
            local_symbol=local,
            trading_class=cfg.trading_class or cfg.symbol,
            conid=cfg.conid,
        )
        return cls(
            contract=contract,
            long_name=cfg.long_name or cfg.symbol,
            tick_size=cfg.tick_size,
            price=cfg.price,
            volatility=cfg.volatility,
            spread_ticks=cfg.spread_ticks,
            quote_size=cfg.quote_size,
            trade_size=cfg.trade_size,
            min_size=cfg.min_size,
            last_trade_time=cfg.last_trade_time,
            time_zone=cfg.time_zone,
        )


@dataclass(frozen=True, slots=True)
class ContractQuery:
    """The contract fields a client sends to look an instrument up; empty means "any"."""

    conid: int = 0
    symbol: str = ""
    sec_type: str = ""
    expiry: str = ""
    strike: Decimal | None = None
    right: str = ""
    multiplier: str = ""
    exchange: str = ""
    primary_exchange: str = ""
    currency: str = ""
    local_symbol: str = ""
    trading_class: str = ""


_RIGHTS = {"C": "C", "CALL": "C", "P": "P", "PUT": "P"}


def _normal_text(number: str) -> str:
    try:
        return format(Decimal(number).normalize(), "f")
    except ArithmeticError:
        return number


class Catalogue:
    """Every instrument tws-sim knows, with TWS's look-ups."""

    def __init__(self, instruments: Iterable[SimInstrument]) -> None:
        self._by_conid: dict[int, SimInstrument] = {}
        for inst in instruments:
            if inst.conid in self._by_conid:
                raise ValidationError(f"conid {inst.conid} appears twice in the catalogue")
            self._by_conid[inst.conid] = inst

    @classmethod
    def from_config(cls, config: SimConfig, today: date | None = None) -> Catalogue:
        """Build the catalogue as of ``today`` (default: the UTC date), naming an instrument whose contract is invalid.

        The rolling series list the contracts not yet past their last trade day on ``today``.
        """
        day = today or datetime.now(UTC).date()
        made = [replace(inst, generated=True) for inst in _build(_generated(config))]
        return cls([*_build([*config.instruments, *_listed(config, day)]), *made])

    def list_new(self, config: SimConfig, today: date) -> list[SimInstrument]:
        """Add the series' contracts listed on ``today`` that are not in the catalogue yet; return them.

        A tws-sim that runs past a contract's last trade lists the next one, as the exchange does.
        """
        fresh = _build([cfg for cfg in _listed(config, today) if cfg.conid not in self._by_conid])
        for inst in fresh:
            self._by_conid[inst.conid] = inst
        return fresh

    def __iter__(self) -> Iterator[SimInstrument]:
        return iter(self._by_conid.values())

    def __len__(self) -> int:
        return len(self._by_conid)

    def get(self, conid: int) -> SimInstrument | None:
        """Return the instrument with ``conid``, or None."""
        return self._by_conid.get(conid)

    def front(self, symbol: str, sec_type: SecType = SecType.FUT, today: date | None = None) -> SimInstrument:
        """Return the nearest contract of ``symbol`` not past its last trade day on ``today`` (default: UTC date)."""
        day = today or datetime.now(UTC).date()
        listed = [i for i in self._by_conid.values() if i.contract.symbol == symbol and i.contract.sec_type is sec_type
                  and i.contract.expiry is not None and i.contract.expiry >= day]
        if not listed:
            raise ValidationError(f"no {symbol} {sec_type} is listed on {day}")
        return min(listed, key=lambda i: (i.contract.expiry, i.conid))

    def match(self, query: ContractQuery) -> list[SimInstrument]:
        """Return every instrument the query describes, as reqContractDetails does.

        A conid decides alone. Otherwise each non-empty field must agree; an
        expiry given as ``YYYYMM`` is a contract month, as IB reads it (CL's
        ``202701`` is CLF7, whose last trade is in December 2026; an option's
        is its expiry month); ``SMART`` matches any exchange.
        """
        if query.conid:
            found = self._by_conid.get(query.conid)
            return [found] if found is not None else []
        return [inst for inst in self._by_conid.values() if _matches(inst, query)]

    def search(self, pattern: str, limit: int = 16) -> list[SimInstrument]:
        """Return instruments whose symbol starts with (then contains) ``pattern``, one per symbol and type."""
        text = pattern.strip().upper()
        if not text:
            return []
        seen: set[tuple[str, str]] = set()
        ranked = sorted(
            self._by_conid.values(),
            key=lambda i: (not i.contract.symbol.upper().startswith(text), i.contract.symbol, i.conid),
        )
        out = []
        for inst in ranked:
            symbol = inst.contract.symbol.upper()
            name = inst.long_name.upper()
            key = (symbol, str(inst.contract.sec_type))
            if key in seen or (text not in symbol and text not in name):
                continue
            if inst.contract.sec_type in (SecType.OPT,):
                continue  # IB lists options as derivative types of the underlying
            seen.add(key)
            out.append(inst)
            if len(out) >= limit:
                break
        return out

    def derivative_types(self, symbol: str) -> list[str]:
        """Return the sec types of derivatives listed on ``symbol`` (for symbolSamples)."""
        kinds = {
            str(i.contract.sec_type)
            for i in self._by_conid.values()
            if i.contract.symbol == symbol and i.contract.sec_type in (SecType.OPT, SecType.FUT)
        }
        return sorted(kinds)


def _listed(config: SimConfig, day: date) -> list[InstrumentConfig]:
    return [InstrumentConfig(**entry) for entry in expand_series(config.futures, config.options, day)]


def _generated(config: SimConfig) -> list[InstrumentConfig]:
    """Return the generated instruments: they avoid the hand-written ones and the series' roots, whatever the day."""
    existing = [(i.conid, i.symbol, str(i.sec_type), i.currency) for i in config.instruments]
    existing += [(0, s.symbol, "FUT", s.currency) for s in config.futures]
    existing += [(0, s.symbol, "OPT", "USD") for s in config.options]
    return [InstrumentConfig(**entry) for entry in generate(config.generated, existing)]


def _build(configs: list[InstrumentConfig]) -> list[SimInstrument]:
    entries = []
    for cfg in configs:
        try:
            entries.append(SimInstrument.from_config(cfg))
        except ValidationError as exc:
            raise ConfigError(f"instrument conid {cfg.conid} ({cfg.symbol}): {exc}") from None
    return entries


def _matches(inst: SimInstrument, q: ContractQuery) -> bool:
    c = inst.contract
    if q.symbol and q.symbol.upper() != c.symbol.upper():
        return False
    if q.local_symbol and q.local_symbol.upper() != c.local_symbol.upper():
        return False
    if not q.symbol and not q.local_symbol:
        return False
    if q.sec_type and q.sec_type.upper() != str(c.sec_type):
        return False
    if q.currency and q.currency.upper() != c.currency.upper():
        return False
    if q.exchange and q.exchange.upper() not in ("SMART", c.exchange.upper()):
        return False
    if q.primary_exchange and c.primary_exchange and q.primary_exchange.upper() != c.primary_exchange.upper():
        return False
    expiry = q.expiry.replace("-", "")
    if len(expiry) == 6:
        if expiry != inst.wire_contract_month:
            return False
    elif expiry and not inst.wire_expiry.startswith(expiry):  # a date, or a prefix of one (a year)
        return False
    if q.strike and (c.strike is None or q.strike != c.strike):
        return False
    if q.right and _RIGHTS.get(q.right.upper()) != inst.wire_right:
        return False
    if q.multiplier and inst.wire_multiplier != _normal_text(q.multiplier):
        return False
    return not (q.trading_class and q.trading_class.upper() != c.trading_class.upper())
