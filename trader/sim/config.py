"""tws-sim's settings: configs/sim.yaml read into frozen models that reject unknown keys.

The file's sections: ``account`` (id, base currency, starting cash,
commissions), ``market`` (seed, tick rate), ``instruments`` (the contracts
that do not expire, with their conid and the parameters of their random walk),
``futures`` / ``options`` (rolling series, :mod:`trader.sim.series`),
``generated`` (hundreds of seeded stocks and FX pairs, :mod:`trader.sim.universe_gen`),
``replay``, ``connections`` and ``pacing`` (IB's historical-data limits,
:mod:`trader.sim.pacing`). It is read with the platform's one config loader;
:class:`~trader.sim.catalogue.Catalogue` turns it into instruments.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from trader.config import REPO_ROOT, StrictModel, read_yaml, validate
from trader.domain import Right, SecType
from trader.domain.commission import CommissionConfig
from trader.sim.limits import ConnectionLimits
from trader.sim.pacing import PacingConfig
from trader.sim.series import FutureSeries, OptionSeries, check_last_trade_time
from trader.sim.universe_gen import GeneratedConfig
from trader.strategy.bars import parse_bar_size

__all__ = [
    "DEFAULT_SIM_CONFIG",
    "AccountConfig",
    "CommissionConfig",
    "InstrumentConfig",
    "MarketConfig",
    "ReplayConfig",
    "SimConfig",
    "load_sim_config",
]

DEFAULT_SIM_CONFIG = REPO_ROOT / "configs" / "sim.yaml"


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
    sessions: bool = Field(False, description="follow the exchange calendars: no prints and no bars outside "
                                              "sessions (off: every market runs around the clock)")
    paused: bool = Field(False, description="start with the market paused (the control RPC resume_market starts it)")


class ReplayConfig(StrictModel):
    """A file, or the market store's bars or ticks, that drives some instruments instead of the random walk."""

    file: Path | None = Field(None, description="CSV or Parquet; relative paths are relative to sim.yaml's directory")
    store: list[str] = Field(default_factory=list, description="contract keys to replay from the market store")
    store_uri: str | None = Field(None, description="the market store (default: the settings' storage.arctic_uri)")
    bar_size: str = Field("1m", description="the size of the stored bars replayed (1m, 5m, 1h, 1d...)")
    ticks: bool = Field(False, description="replay the store's recorded ticks instead of its bars")
    end: datetime | None = Field(None, description="the store's rows up to this time (default: now)")
    speed: float = Field(1.0, gt=0, description="seconds of data played per second of the server's clock")
    loop: bool = Field(False, description="start again from the beginning at the end of the file")
    start: datetime | None = Field(None, description="skip the rows before this time (naive means UTC)")
    bar_seconds: int | None = Field(None, gt=0, description="a bar file's bar length (default: inferred)")
    align: int | None = Field(None, gt=0, le=86_400, description="start (and resume after a pause) on the clock's "
                              "next multiple of this many seconds: bars of L played at speed L/align each fall "
                              "into one live bar of align seconds")
    symbol: str | None = Field(None, description="the instrument of a file without a symbol column")
    symbols: dict[str, int] = Field(default_factory=dict, description="file symbol -> catalogue conid")

    @model_validator(mode="after")
    def _one_source(self) -> ReplayConfig:
        if (self.file is None) == (not self.store):
            raise ValueError("a replay needs either a file or store keys, not both")
        if self.store:
            if self.start is None:
                raise ValueError("a replay from the store needs a start (--start)")
            seconds = parse_bar_size(self.bar_size)  # a ValueError naming the size
            if not self.ticks and self.bar_seconds is None:
                object.__setattr__(self, "bar_seconds", seconds)
        return self


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
    generated: GeneratedConfig = Field(default_factory=GeneratedConfig, description=(
        "stocks, ETFs and FX pairs generated from a seed (trader.sim.universe_gen), quoted once asked about"))
    replay: ReplayConfig | None = None
    connections: ConnectionLimits = ConnectionLimits()
    pacing: PacingConfig = PacingConfig()

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
    if config.replay is not None and config.replay.file is not None and not config.replay.file.is_absolute():
        replay = config.replay.model_copy(update={"file": path.parent / config.replay.file})
        config = config.model_copy(update={"replay": replay})
    return config
