"""The one config loader: YAML files, a named profile, environment overrides, strict models.

``configs/trader.yaml`` holds the platform settings (endpoints, ports, storage
paths) and a ``profiles:`` map whose entries are deep-merged over the base.
Environment variables override any key: ``TRADER_BUS__PUB_PORT=6000`` sets
``bus.pub_port``. Models are frozen, reject unknown keys by name, and keep
secrets in ``SecretStr`` so their reprs are masked. Relative paths resolve
against the platform home (``TRADER_HOME``, default: the repository root).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from trader.errors import ConfigError
from trader.messaging.zmtp_limits import CLIENT_PING_INTERVAL, CLIENT_PING_MARGIN

ENV_PREFIX = "TRADER_"
# Variables that steer the loader itself rather than override a key.
_RESERVED_ENV = {"TRADER_HOME", "TRADER_PROFILE", "TRADER_CONFIG"}
_YAML_NULLS = {"", "~", "null", "Null", "NULL"}
REPO_ROOT = Path(__file__).resolve().parent.parent

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every config model: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class BusSettings(StrictModel):
    host: str = "127.0.0.1"
    pub_port: int = Field(5555, ge=0, le=65535, description="XSUB side: publishers connect here")
    sub_port: int = Field(5556, ge=0, le=65535, description="XPUB side: subscribers connect here")
    max_frame_bytes: int = Field(8 * 1024 * 1024, gt=0)

    @property
    def pub_endpoint(self) -> str:
        return f"tcp://{self.host}:{self.pub_port}"

    @property
    def sub_endpoint(self) -> str:
        return f"tcp://{self.host}:{self.sub_port}"


class RedisSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(6379, ge=0, le=65535)
    data_dir: Path = Path("data/redis")
    password: SecretStr | None = None
    appendonly: Literal["yes", "no"] = Field(
        "yes", description="redis-server's AOF: the journal outlives a restart of Redis (and of the stack)")

    @field_validator("appendonly", mode="before")
    @classmethod
    def _yes_no(cls, value: Any) -> Any:
        return ("yes" if value else "no") if isinstance(value, bool) else value  # YAML reads yes/no as booleans


class LoggingSettings(StrictModel):
    """How big a log may grow: each service's ``<svc>.log`` and pycron's capture of a job's output."""

    max_bytes: int = Field(20 * 1024 * 1024, ge=4096, description="a log file's size before it is rotated")
    backups: int = Field(5, ge=1, description="rotated files kept beside it (<name>.1 the newest)")


class StorageSettings(StrictModel):
    data_dir: Path = Path("data")
    logs_dir: Path = Path("logs")
    run_dir: Path = Path("run")
    arctic_uri: str = "lmdb://data/arctic"
    s3_connect_timeout_ms: int = Field(2000, ge=100, description="an S3 store: the wait for a connection")
    s3_request_timeout_ms: int = Field(10000, ge=100, description="an S3 store: the wait for an answer")
    s3_max_attempts: int = Field(3, ge=1, description="an S3 store: tries of a request before a StorageError")


class PycronSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = None
    # Relative to the directory of the trader.yaml that was loaded, not to the home:
    # a home holds data and logs, the configs travel together.
    config: Path = Path("pycron.yaml")
    heartbeat_timeout: float = Field(5.0, gt=0)


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


class ServiceSettings(StrictModel):
    host: str = "127.0.0.1"
    rpc_port: int | None = Field(None, ge=0, le=65535)
    heartbeat_interval: float = Field(1.0, gt=0)
    log_level: str | None = None  # None: the platform's log_level
    max_inflight: int = Field(256, gt=0)
    max_connections: int = Field(1024, gt=0, description="RPC connections open at once; past it a new one "
                                 "evicts the longest idle (clamped at start to the open-file limit less a "
                                 "reserve: trader.service.fds)")
    rpc_max_buffered_bytes: int = Field(64 * 2**20, gt=0, description="bytes of unfinished requests held across "
                                        "RPC connections; past it the connection holding the most is dropped")
    rpc_max_outbound_bytes: int = Field(256 * 2**20, gt=0, description="bytes of replies unread across RPC "
                                        "connections; past it the client leaving the most unread is dropped")
    rpc_write_high_water: int = Field(2**20, gt=0, description="a client with more of its replies unread than "
                                      "this: its next requests wait unread until it reads")
    rpc_heartbeat_interval: float = Field(10.0, gt=0, description="a ZMTP PING to each RPC client this often, seconds")
    rpc_heartbeat_timeout: float = Field(30.0, gt=0, description="an RPC client heard from for none of this is dropped")
    rpc_idle_timeout: float = Field(300.0, gt=0, description="an RPC connection without a request for this long is "
                                    "closed (clients reconnect by themselves)")
    rpc_read_timeout: float = Field(30.0, gt=0, description="a request not wholly received within this is dropped "
                                    "with its connection")
    rpc_write_timeout: float = Field(30.0, gt=0, description="a client whose replies are backed up and that took "
                                     "none of them for this long is dropped as stalled")

    @model_validator(mode="after")
    def _pings_before_the_timeout(self) -> ServiceSettings:
        if self.rpc_heartbeat_interval >= self.rpc_heartbeat_timeout:
            raise ValueError(f"rpc_heartbeat_interval ({self.rpc_heartbeat_interval:g} s) must be shorter than "
                             f"rpc_heartbeat_timeout ({self.rpc_heartbeat_timeout:g} s), or every client is dropped")
        # The server hears an idle client only through its PINGs: one late ping (a stalled loop on either
        # side) must not drop every client at once.
        least = CLIENT_PING_INTERVAL * CLIENT_PING_MARGIN
        if self.rpc_heartbeat_timeout < least:
            raise ValueError(f"rpc_heartbeat_timeout ({self.rpc_heartbeat_timeout:g} s) must be at least "
                             f"{CLIENT_PING_MARGIN:g} times the RPC clients' fixed ping interval "
                             f"({CLIENT_PING_INTERVAL:g} s), so {least:g} s or more, or idle clients are dropped "
                             "whenever a ping is late")
        return self

    @property
    def rpc_endpoint(self) -> str | None:
        return None if self.rpc_port is None else f"tcp://{self.host}:{self.rpc_port}"


Z85_ALPHABET = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#")


def _check_z85(value: str, what: str) -> str:
    """Return ``value`` if it is a 40-character Z85 CURVE key, else raise ValueError (pydantic reports it)."""
    if len(value) != 40 or not set(value) <= Z85_ALPHABET:
        raise ValueError(f"{what} must be a 40-character Z85 CURVE key (as `trader keys generate` writes)")
    return value


class CurveKeySettings(StrictModel):
    """One CURVE key pair: a zmq.auth certificate file, or the keys themselves (Z85, e.g. from the environment).

    A secret certificate (``NAME.key_secret``) holds both keys, a public one
    (``NAME.key``) only the public key. A key given inline overrides the file's;
    a public key is derived from the secret one when only that is given.
    """

    key_file: Path | None = None
    public_key: str | None = None
    secret_key: SecretStr | None = None

    @field_validator("public_key")
    @classmethod
    def _public_z85(cls, value: str | None) -> str | None:
        return None if value is None else _check_z85(value, "public_key")

    @field_validator("secret_key")
    @classmethod
    def _secret_z85(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_z85(value.get_secret_value(), "secret_key")
        return value

    @property
    def configured(self) -> bool:
        """True if any key or key file is set."""
        return self.key_file is not None or self.public_key is not None or self.secret_key is not None


class TlsSettings(StrictModel):
    """A certificate and its private key (PEM files) for an HTTPS endpoint."""

    cert_file: Path | None = None
    key_file: Path | None = None


class SecuritySettings(StrictModel):
    """How endpoints are protected; an endpoint beyond loopback is refused unless protected.

    ``mode: curve``: the RPC and the bus use ZeroMQ CURVE (encrypted, and only
    the allowed client keys may connect), on every host, loopback included.
    ``server`` is the key pair the RPC servers and the bus proxy bind with (its
    public key is all a client needs); ``client`` is the pair this host connects
    with (unset: the server's pair, for a single host). The servers accept the
    keys in ``allowed_clients`` and in ``allowed_clients_dir`` (public
    certificates, ``*.key``), and always this host's own client key.
    ``tls`` serves pycron's control API over HTTPS, which it needs beyond loopback.
    """

    mode: Literal["none", "curve"] = "none"
    server: CurveKeySettings = CurveKeySettings()
    client: CurveKeySettings = CurveKeySettings()
    allowed_clients_dir: Path | None = None
    allowed_clients: list[str] = Field(default_factory=list, description="Z85 public keys of allowed clients")
    tls: TlsSettings = TlsSettings()

    @field_validator("allowed_clients")
    @classmethod
    def _allowed_z85(cls, value: list[str]) -> list[str]:
        return [_check_z85(key, "allowed_clients entry") for key in value]

    @property
    def curve(self) -> bool:
        """True when the RPC and the bus use CURVE."""
        return self.mode == "curve"


class Settings(StrictModel):
    """The platform's settings after profile merge and environment overrides."""

    home: Path = REPO_ROOT
    config_file: Path = REPO_ROOT / "configs" / "trader.yaml"
    profile: str = "default"
    log_level: str = "INFO"
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop", description="the services' event loop: uvloop (libuv, C) or the standard library's")
    bus: BusSettings = BusSettings()
    redis: RedisSettings = RedisSettings()
    storage: StorageSettings = StorageSettings()
    logging: LoggingSettings = LoggingSettings()
    pycron: PycronSettings = PycronSettings()
    broker: str = Field("ib", min_length=1, description="the broker trader_service trades through "
                        "(a name in trader.brokers.factory.BROKERS; ib: the `ib:` endpoint)")
    ib: IbSettings = IbSettings()
    risk: RiskSettings = RiskSettings()
    trading: TradingSettings = TradingSettings()
    strategies: StrategiesSettings = StrategiesSettings()
    history: HistorySettings = HistorySettings()
    recorder: RecorderSettings = RecorderSettings()
    services: dict[str, ServiceSettings] = {}
    security: SecuritySettings = SecuritySettings()

    def path(self, p: Path | str) -> Path:
        """Resolve a configured path against the platform home."""
        p = Path(p)
        return p if p.is_absolute() else self.home / p

    def config_path(self, p: Path | str) -> Path:
        """Resolve a path to another config file against the loaded trader.yaml's directory."""
        p = Path(p)
        return p if p.is_absolute() else self.config_file.parent / p

    def service(self, name: str) -> ServiceSettings:
        """Return one service's settings, defaults if the file does not name it."""
        return self.services.get(name, ServiceSettings())

    def locator_env(self) -> dict[str, str]:
        """Return the variables that make another process load exactly these settings.

        TRADER_* overrides travel separately, through the inherited environment.
        """
        return {
            "TRADER_HOME": str(self.home),
            "TRADER_PROFILE": self.profile,
            "TRADER_CONFIG": str(self.config_file),
        }

    def secrets(self) -> list[str]:
        """Every secret value in these settings, for log masking."""
        found: list[str] = []
        curve = (self.security.server.secret_key, self.security.client.secret_key)
        for secret in (self.redis.password, self.pycron.token, self.history.polygon_api_key, *curve):
            if secret is not None and secret.get_secret_value():
                found.append(secret.get_secret_value())
        return found


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``base`` with ``override`` merged in; nested mappings merge, the rest replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, or raise ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def env_overrides(
    env: Mapping[str, str], prefix: str = ENV_PREFIX, origins: dict[str, str] | None = None
) -> dict[str, Any]:
    """Turn ``PREFIX_A__B=v`` variables into a nested ``{a: {b: v}}`` mapping.

    ``origins``, if given, is filled with ``{"a.b": "PREFIX_A__B"}`` so errors
    can name the variable a bad key came from.

    Values are read as YAML scalars so ``6000`` is a number and ``true`` a bool
    (and ``[TSLA, GME]`` or ``{start: "09:30"}`` a list or a mapping);
    the model then validates them like any key from a file.
    """
    out: dict[str, Any] = {}
    for name, raw in env.items():
        if not name.startswith(prefix) or name in _RESERVED_ENV:
            continue
        keys = [k.lower() for k in name[len(prefix):].split("__") if k]
        if not keys:
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if isinstance(value, (dict, list)) and not raw.lstrip().startswith(("[", "{")):
            value = raw  # only explicit flow syntax ([a, b] or {k: v}) makes a list or a mapping
        elif value is None and raw.strip() not in _YAML_NULLS:
            value = raw  # "#..." reads as a comment: a key (Z85) may start so
        elif isinstance(value, str) and value != raw.strip() and not raw.lstrip().startswith(("'", '"')):
            value = raw  # YAML made other text of it ("&a..." an anchor, "!a..." a tag): the text is the value
        node = out
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment variable {name} conflicts with another override")
        node[keys[-1]] = value
        if origins is not None:
            origins[".".join(keys)] = name
    return out


def validate(
    model: type[M], data: Mapping[str, Any], source: str, origins: Mapping[str, str] | None = None
) -> M:
    """Validate ``data`` into ``model``, or raise one ConfigError naming every bad key.

    ``origins`` maps a dotted key to where it came from (an environment variable).
    """
    try:
        return model.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(str(part) for part in err["loc"]) or "<root>"
            origin = f" (from {origins[where]})" if origins and where in origins else ""
            if err["type"] == "extra_forbidden":
                problems.append(f"{where}: unknown key{origin}")
            else:
                problems.append(f"{where}: {err['msg']}{origin}")
        raise ConfigError(f"{source}: " + "; ".join(problems)) from None


def default_home(env: Mapping[str, str] | None = None) -> Path:
    """Return the platform home: ``TRADER_HOME`` or the repository root."""
    env = os.environ if env is None else env
    return Path(env.get("TRADER_HOME") or REPO_ROOT).resolve()


def config_path(env: Mapping[str, str] | None = None) -> Path:
    """Return the trader.yaml path: ``TRADER_CONFIG``, else home's, else the repository's."""
    env = os.environ if env is None else env
    if env.get("TRADER_CONFIG"):
        return Path(env["TRADER_CONFIG"]).resolve()
    candidate = default_home(env) / "configs" / "trader.yaml"
    return candidate if candidate.exists() else REPO_ROOT / "configs" / "trader.yaml"


def load_settings(
    profile: str | None = None,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Load trader.yaml, merge the profile, apply environment overrides and validate."""
    env = os.environ if env is None else env
    path = path or config_path(env)
    raw = read_yaml(path)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: 'profiles' must be a mapping of profile name to overrides")
    name = profile or env.get("TRADER_PROFILE") or raw.get("profile") or "default"
    if name not in profiles and name != "default":
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(f"{path}: unknown profile {name!r} (known: {known})")
    merged = deep_merge(raw, profiles.get(name) or {})
    origins: dict[str, str] = {}
    env_data = env_overrides(env, origins=origins)
    merged = deep_merge(merged, env_data)
    merged["profile"] = name
    merged["home"] = str(default_home(env))
    merged["config_file"] = str(Path(path).resolve())
    source = f"{path} (profile {name}{', with TRADER_* environment overrides' if env_data else ''})"
    return validate(Settings, merged, source, origins)
