"""The platform's plumbing settings: the bus, Redis, storage, logs, pycron, each service, and their security.

Every config model derives from :class:`StrictModel` (frozen, unknown keys
rejected by name) and keeps secrets in ``SecretStr``, so their reprs are
masked. The root :class:`~trader.config.Settings` and the loader are in
:mod:`trader.config`, the trading areas' models in :mod:`trader.config_trading`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from trader.messaging.zmtp_limits import CLIENT_PING_INTERVAL, CLIENT_PING_MARGIN

__all__ = [
    "Z85_ALPHABET", "BusSettings", "CurveKeySettings", "LoggingSettings", "PycronSettings", "RedisSettings",
    "SecuritySettings", "ServiceSettings", "StorageSettings", "StrictModel", "TlsSettings",
]


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
    s3_request_timeout_ms: int = Field(10000, ge=100, description="an S3 store: the wait for an answer, "
                                       "and for an upload to complete (one segment, up to 100,000 rows, "
                                       "per request): raise it on a slow uplink")
    s3_max_attempts: int = Field(3, ge=1, description="an S3 store: tries of a request before a StorageError")


class PycronSettings(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)
    token: SecretStr | None = None
    # Relative to the directory of the trader.yaml that was loaded, not to the home:
    # a home holds data and logs, the configs travel together.
    config: Path = Path("pycron.yaml")
    heartbeat_timeout: float = Field(5.0, gt=0)


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

