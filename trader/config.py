"""The one config loader: YAML files, a named profile, environment overrides, strict models.

``configs/trader.yaml`` holds the platform settings (endpoints, ports, storage
paths) and a ``profiles:`` map whose entries are deep-merged over the base.
Environment variables override any key: ``TRADER_BUS__PUB_PORT=6000`` sets
``bus.pub_port``. Models are frozen, reject unknown keys by name, and keep
secrets in ``SecretStr`` so their reprs are masked. Relative paths resolve
against the platform home (``TRADER_HOME``, default: the repository root).

The models are split by area: the platform's plumbing in
:mod:`trader.config_platform`, the trading areas in :mod:`trader.config_trading`;
both are re-exported here, the one import path for settings.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar

import pydantic
import yaml
from pydantic import BaseModel, Field

from trader.config_platform import (
    Z85_ALPHABET,
    BusSettings,
    CurveKeySettings,
    LoggingSettings,
    PycronSettings,
    RedisSettings,
    SecuritySettings,
    ServiceSettings,
    StorageSettings,
    StrictModel,
    TlsSettings,
)
from trader.config_trading import (
    HistorySettings,
    IbSettings,
    RecorderSettings,
    RiskSettings,
    StrategiesSettings,
    TradingHours,
    TradingSettings,
)
from trader.errors import ConfigError

__all__ = [
    "ENV_PREFIX", "REPO_ROOT", "Z85_ALPHABET", "BusSettings", "CurveKeySettings", "HistorySettings", "IbSettings",
    "LoggingSettings", "PycronSettings", "RecorderSettings", "RedisSettings", "RiskSettings", "SecuritySettings",
    "ServiceSettings", "Settings", "StorageSettings", "StrategiesSettings", "StrictModel", "TlsSettings",
    "TradingHours", "TradingSettings", "config_path", "deep_merge", "default_home", "env_overrides",
    "load_settings", "read_yaml", "validate",
]

ENV_PREFIX = "TRADER_"
# Variables that steer the loader itself rather than override a key.
_RESERVED_ENV = {"TRADER_HOME", "TRADER_PROFILE", "TRADER_CONFIG"}
_YAML_NULLS = {"", "~", "null", "Null", "NULL"}
REPO_ROOT = Path(__file__).resolve().parent.parent

M = TypeVar("M", bound=BaseModel)


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
