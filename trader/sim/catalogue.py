"""The simulator's instrument catalogue and settings, loaded from configs/sim.yaml.

The file's sections: ``account`` (id, base currency, starting cash,
commissions), ``market`` (seed, tick rate), ``instruments`` (the contracts
that do not expire, with their conid and the parameters of their random walk)
and ``futures`` / ``options`` (rolling series: the contracts listed as of the
day tws-sim starts, see :mod:`trader.sim.series`). It is
read with the platform's one config loader, into frozen models that reject
unknown keys. :class:`Catalogue` answers the contract look-ups TWS answers:
by conid, by a partial contract (``reqContractDetails``), by a symbol prefix
(``reqMatchingSymbols``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from pydantic import Field, field_validator, model_validator

from trader.config import REPO_ROOT, StrictModel, read_yaml, validate
from trader.domain import Contract, Right, SecType
from trader.errors import ConfigError, ValidationError
from trader.sim.limits import ConnectionLimits
from trader.sim.series import FutureSeries, OptionSeries, check_last_trade_time, expand_series

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

DEFAULT_SIM_CONFIG = REPO_ROOT / "configs" / "sim.yaml"


class CommissionConfig(StrictModel):
    """IB-style tiered commissions, simplified: per unit with a minimum, per kind."""

    stock_per_share: Decimal = Decimal("0.005")
    stock_min: Decimal = Decimal("1.00")
    future_per_contract: Decimal = Decimal("2.25")
    option_per_contract: Decimal = Decimal("0.65")
    option_min: Decimal = Decimal("1.00")
    fx_rate: Decimal = Decimal("0.00002")  # of the traded notional
    fx_min: Decimal = Decimal("2.00")


class AccountConfig(StrictModel):
    """The simulated account (``id``, the default one) and the others the login manages, if any."""

    id: str = "DU1234567"
    managed: list[str] = Field(default_factory=list, description=(
        "more accounts the login manages (a financial advisor's): managedAccounts lists them after id; "
        "each starts with the same cash"))
    currency: str = "USD"
    cash: Decimal = Decimal(1000000)
    commission: CommissionConfig = CommissionConfig()

    @property
    def ids(self) -> list[str]:
        """Return every account the login manages, the default one first."""
        return [self.id, *self.managed]

    @model_validator(mode="after")
    def _unique_ids(self) -> AccountConfig:
        if len(set(self.ids)) != len(self.ids) or not all(i.strip() for i in self.ids):
            raise ValueError(f"account ids must be unique and not empty: {self.ids}")
        return self


class MarketConfig(StrictModel):
    """The market generator's settings."""

    seed: int = 42
    tick_rate: float = Field(4.0, gt=0, le=1000, description="quote updates per second")
    account_update_interval: float = Field(3.0, gt=0, description="seconds between account pushes")


class ReplayConfig(StrictModel):
    """A file of bars or ticks that drives some instruments instead of the random walk."""

    file: Path = Field(description="CSV or Parquet; relative paths are relative to sim.yaml's directory")
    speed: float = Field(1.0, gt=0, description="seconds of data played per second of the server's clock")
    loop: bool = Field(False, description="start again from the beginning at the end of the file")
    start: datetime | None = Field(None, description="skip the rows before this time (naive means UTC)")
    bar_seconds: int | None = Field(None, gt=0, description="a bar file's bar length (default: inferred)")
    symbol: str | None = Field(None, description="the instrument of a file without a symbol column")
    symbols: dict[str, int] = Field(default_factory=dict, description="file symbol -> catalogue conid")


class InstrumentConfig(StrictModel):
    """One contract and the parameters of its simulated market."""

    conid: int = Field(gt=0)
    symbol: str
    sec_type: SecType
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    expiry: date | None = None
    contract_month: str = Field("", description="a future's contract month YYYYMM (default: from its local symbol)")
    strike: Decimal | None = None
    right: Right | None = None
    multiplier: Decimal | None = None
    local_symbol: str = ""
    trading_class: str = ""
    long_name: str = ""
    tick_size: Decimal = Field(Decimal("0.01"), gt=0)
    price: Decimal = Field(gt=0, description="the price the walk starts from")
    volatility: float = Field(0.25, ge=0, description="annualised, of the log price")
    spread_ticks: int = Field(1, ge=1)
    quote_size: int = Field(5, ge=1, description="typical displayed size at the touch")
    trade_size: int = Field(1, ge=1, description="typical size of one trade")
    min_size: Decimal = Field(Decimal(1), gt=0)
    last_trade_time: str = Field("", description="HH:MM on the expiry day, in time_zone (IB's lastTradeTime)")
    time_zone: str = Field("UTC", description="the exchange's time zone (IB's timeZoneId)")

    @field_validator("expiry", mode="before")
    @classmethod
    def _expiry(cls, value: object) -> object:
        if isinstance(value, int):
            value = str(value)
        if isinstance(value, str) and len(value) == 8 and value.isdigit():
            return date(int(value[:4]), int(value[4:6]), int(value[6:]))
        return value

    @model_validator(mode="after")
    def _clock(self) -> InstrumentConfig:
        check_last_trade_time(self.last_trade_time, self.time_zone)
        return self

    @field_validator("contract_month", mode="before")
    @classmethod
    def _month(cls, value: object) -> object:
        return str(value) if isinstance(value, int) else value  # YAML reads 202701 as a number

    @field_validator("strike", "multiplier", "tick_size", "price", "min_size", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        # YAML reads 0.01 as a float; go through its text so the Decimal is exact.
        return Decimal(str(value)) if isinstance(value, float) else value


class SimConfig(StrictModel):
    """The whole of configs/sim.yaml."""

    account: AccountConfig = AccountConfig()
    market: MarketConfig = MarketConfig()
    instruments: list[InstrumentConfig] = Field(default_factory=list)
    futures: list[FutureSeries] = Field(default_factory=list, description="rolling futures series")
    options: list[OptionSeries] = Field(default_factory=list, description="rolling monthly option series")
    replay: ReplayConfig | None = None
    connections: ConnectionLimits = ConnectionLimits()

    @model_validator(mode="after")
    def _unique_conids(self) -> SimConfig:
        seen: set[int] = set()
        for inst in self.instruments:
            if inst.conid in seen:
                raise ValueError(f"conid {inst.conid} appears twice")
            seen.add(inst.conid)
        return self


def load_sim_config(path: Path | None = None) -> SimConfig:
    """Read and validate the simulator config (default: configs/sim.yaml)."""
    path = path or DEFAULT_SIM_CONFIG
    config = validate(SimConfig, read_yaml(path), str(path))
    if config.replay is not None and not config.replay.file.is_absolute():
        replay = config.replay.model_copy(update={"file": path.parent / config.replay.file})
        config = config.model_copy(update={"replay": replay})
    return config


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
            hour, minute, *second = (int(p) for p in self.last_trade_time.split(":"))
            return datetime.combine(expiry, time(hour, minute, *second[:1], tzinfo=ZoneInfo(self.time_zone)))
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
        return cls(_build([*config.instruments, *_listed(config, day)]))

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
