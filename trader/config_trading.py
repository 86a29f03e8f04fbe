"""The trading areas' settings: the IB endpoint, the risk gate, and the trader, strategy, history and recorder services.

Each model is a :class:`~trader.config_platform.StrictModel`, validated and
merged by the loader in :mod:`trader.config`, which re-exports them.
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from pathlib import Path

from pydantic import Field, SecretStr, field_validator

from trader.config_platform import StrictModel

__all__ = [
    "HistorySettings", "IbSettings", "RecorderSettings", "RiskSettings", "StrategiesSettings", "TradingHours",
    "TradingSettings",
]


class IbSettings(StrictModel):
    """The IB API endpoint the platform trades through: TWS, IB Gateway, or tws-sim."""

    host: str = "127.0.0.1"
    port: int = Field(7497, ge=1, le=65535, description="TWS paper 7497, live 7496; Gateway 4002/4001")
    client_id: int = Field(1, ge=0, description="the trader service's API client id")
    account: str | None = Field(None, description="the account to trade; None: the only one TWS manages")


class TradingHours(StrictModel):
    """When orders may be placed: a daily window on the given weekdays, in a time zone."""

    start: time = time(9, 30)
    end: time = time(16, 0)
    timezone: str = "America/New_York"
    weekdays: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], description="0 = Monday")


class RiskSettings(StrictModel):
    """The risk gate's limits; None switches a limit off. Money is in the account's base currency."""

    max_order_quantity: Decimal | None = Field(None, gt=0)
    max_order_notional: Decimal | None = Field(None, gt=0)
    max_position: Decimal | None = Field(None, gt=0, description="absolute quantity per instrument")
    max_gross_exposure: Decimal | None = Field(None, gt=0, description="sum of |market value| after the order")
    max_daily_loss: Decimal | None = Field(None, gt=0, description="realized + unrealized loss since the day began")
    max_orders_per_minute: int | None = Field(None, gt=0)
    max_price_deviation: Decimal | None = Field(
        None, gt=0, description="a limit or stop price this far from the market (a fraction, 0.1 = 10%) is refused")
    allowed: list[str] = Field(default_factory=list, description="symbols or contract keys; empty: all")
    blocked: list[str] = Field(default_factory=list, description="symbols or contract keys never traded")
    trading_hours: TradingHours | None = None

    @field_validator("max_order_quantity", "max_order_notional", "max_position", "max_gross_exposure",
                     "max_daily_loss", "max_price_deviation", mode="before")
    @classmethod
    def _exact(cls, value: object) -> object:
        # YAML reads 0.1 as a float; go through its text so the Decimal is exact.
        return Decimal(str(value)) if isinstance(value, float) else value


class TradingSettings(StrictModel):
    """How the trader service keeps its book and talks to the broker."""

    journal_stream: str = "trader:journal"
    snapshot_key: str = "trader:snapshot"
    subscriptions_key: str = Field("trader:snapshot:subscriptions", min_length=1,
                                   description="Redis hash of the streams users started, streamed again after "
                                   "a restart")
    live: bool = Field(False, description="real money: the CLI asks before each order")
    reconnect_initial: float = Field(0.5, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(30.0, gt=0)
    connect_timeout: float = Field(10.0, gt=0)
    history_requests_per_10min: int = Field(60, gt=0, description="IB's pacing limit for historical data")
    ib_max_requests: int = Field(45, ge=0, description="ib_async's request pacing: at most this many messages "
                                 "to IB per ib_requests_interval (0: off). A real TWS or Gateway allows 50 a "
                                 "second and disconnects a client that sends more")
    ib_requests_interval: float = Field(1.0, gt=0, description="the pacing window of ib_max_requests, seconds")
    quote_idle_release: float = Field(900.0, gt=0, description="seconds after an instrument's last order that the "
                                      "desk lets go of the market data it opened to price its orders (IB limits "
                                      "the streams open at once: 100 by default)")


class StrategiesSettings(StrictModel):
    """The strategy service: where plugins live and how it talks to the trader service."""

    directory: Path = Path("strategies")
    only: list[str] | None = Field(None, description="load only these strategies (default: every plugin)")
    order_retry_seconds: float = Field(30.0, ge=0, description="how long an order is retried while the trader service is away")
    history_timeout: float = Field(60.0, gt=0)
    log_lines: int = Field(500, gt=0, description="log lines kept per strategy for `strategy logs`")
    no_ticks_seconds: float = Field(30.0, ge=0, description="seconds without a tick of one of its instruments "
                                    "before a strategy shows DEGRADED (0: never; a strategy's config may set its own)")
    switches_key: str = Field("strategies:enabled", min_length=1,
                              description="Redis hash of the enable/disable choices made over RPC")
    drift_key: str = Field("strategies:drift", min_length=1,
                           description="Redis hash of each strategy's last drift record (`strategy drift --record`)")


class HistorySettings(StrictModel):
    """history_service: the download job queue and the sources it downloads from."""

    client_id: int = Field(11, ge=0, description="history_service's own IB API client id (trader_service has "
                           "ib.client_id)")
    jobs_key: str = Field("history:jobs", min_length=1, description="the Redis key prefix of the durable job queue")
    pacing: bool = Field(True, description="obey IB's historical-data pacing rules (off only against a tws-sim "
                         "started with pacing off)")
    polygon_url: str = Field("https://api.polygon.io", description="Polygon's REST endpoint")
    polygon_api_key: SecretStr | None = Field(None, description="never in a file: TRADER_HISTORY__POLYGON_API_KEY")
    yahoo_url: str = Field("https://query1.finance.yahoo.com", description="Yahoo's chart API endpoint")
    http_timeout: float = Field(30.0, gt=0, description="seconds an HTTP source may take to answer one request")
    nightly_bar_sizes: list[str] = Field(default_factory=lambda: ["1d", "1m"],
                                         description="what the nightly job brings up to date for every universe")
    sources: dict[str, str] = Field(default_factory=dict, description="download sources of one's own beside "
                                    "ib, polygon, yahoo and file: name -> 'package.module:Class'")


class RecorderSettings(StrictModel):
    """The tick recorder: the bus's ``tick.*`` into the store, in batches."""

    batch_rows: int = Field(50_000, gt=0, description="the most ticks held unstored (a kill -9 loses no more): "
                            "a batch is written at half this size ...")
    batch_seconds: float = Field(5.0, gt=0, description="... or this long after its first tick, whichever is first")
    topics: list[str] = Field(default_factory=lambda: ["tick"], description="bus topic prefixes recorded")

