"""The config loader: profiles, environment overrides, unknown keys, masked secrets."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader.config import REPO_ROOT, env_overrides, load_settings
from trader.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "trader.yaml"
    path.write_text(text)
    return path


def test_the_shipped_config_loads_for_every_profile() -> None:
    for profile in ("default", "test"):
        settings = load_settings(profile, REPO_ROOT / "configs" / "trader.yaml", env={})
        assert settings.profile == profile
        assert settings.bus.host == "127.0.0.1"
        assert settings.pycron.host == "127.0.0.1"
        assert (settings.ib.host, settings.ib.port, settings.ib.client_id, settings.ib.account) == (
            "127.0.0.1", 7497, 1, None)


def test_ib_endpoint_is_overridden_from_the_environment_and_checked(tmp_path: Path) -> None:
    path = _write(tmp_path, "ib: {port: 4002}\n")
    settings = load_settings(None, path, env={"TRADER_IB__CLIENT_ID": "7", "TRADER_IB__ACCOUNT": "DU1"})
    assert (settings.ib.port, settings.ib.client_id, settings.ib.account) == (4002, 7, "DU1")
    with pytest.raises(ConfigError, match="ib.port: Input should be less than or equal to 65535"):
        load_settings(None, path, env={"TRADER_IB__PORT": "70000"})
    with pytest.raises(ConfigError, match="ib.clientid: unknown key"):
        load_settings(None, _write(tmp_path, "ib: {clientid: 3}\n"), env={})


def test_profile_merges_deeply_and_env_overrides_win(tmp_path: Path) -> None:
    path = _write(tmp_path, """
bus: {pub_port: 7000, sub_port: 7001}
profiles:
  fast: {bus: {pub_port: 8000}, log_level: DEBUG}
""")
    env = {"TRADER_BUS__SUB_PORT": "9001", "TRADER_HOME": str(tmp_path), "UNRELATED": "x"}
    settings = load_settings("fast", path, env=env)
    assert (settings.bus.pub_port, settings.bus.sub_port, settings.log_level) == (8000, 9001, "DEBUG")
    assert settings.bus.pub_endpoint == "tcp://127.0.0.1:8000"
    assert settings.home == tmp_path.resolve()
    assert settings.path(settings.storage.logs_dir) == tmp_path.resolve() / "logs"
    assert settings.path("/abs/x") == Path("/abs/x")


def test_unknown_keys_are_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "bus: {pub_prot: 1}\nredis: {port: 1, colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_settings(None, path, env={})
    assert "bus.pub_prot: unknown key" in str(info.value)
    assert "redis.colour: unknown key" in str(info.value)


def test_unknown_env_override_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, "{}\n")
    with pytest.raises(ConfigError, match=r"bus.pubport: unknown key \(from TRADER_BUS__PUBPORT\)"):
        load_settings(None, path, env={"TRADER_BUS__PUBPORT": "1"})


def test_bad_values_and_unknown_profiles_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, "bus: {pub_port: 70000}\n")
    with pytest.raises(ConfigError, match="bus.pub_port"):
        load_settings(None, path, env={})
    path = _write(tmp_path, "profiles: {a: {}}\n")
    with pytest.raises(ConfigError, match="unknown profile 'b' .known: a"):
        load_settings("b", path, env={})
    with pytest.raises(ConfigError, match="not found"):
        load_settings(None, tmp_path / "missing.yaml", env={})
    path = _write(tmp_path, "bus: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        load_settings(None, path, env={})


def test_secrets_are_masked_in_reprs(tmp_path: Path) -> None:
    path = _write(tmp_path, "{}\n")
    settings = load_settings(None, path, env={"TRADER_PYCRON__TOKEN": "s3cret-token"})
    assert settings.pycron.token is not None
    assert settings.pycron.token.get_secret_value() == "s3cret-token"
    assert "s3cret-token" not in repr(settings)
    assert "s3cret-token" not in str(settings.model_dump())
    assert settings.secrets() == ["s3cret-token"]


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = load_settings(None, _write(tmp_path, "{}\n"), env={})
    with pytest.raises(Exception):
        settings.bus.pub_port = 1  # type: ignore[misc]


def test_env_values_are_typed_like_yaml() -> None:
    assert env_overrides({"TRADER_A__B": "6000", "TRADER_C": "true", "TRADER_D": "x y"}) == {
        "a": {"b": 6000}, "c": True, "d": "x y"}
    # Only explicit flow syntax makes a list or a mapping (TRADER_RISK__BLOCKED="[TSLA, GME]").
    assert env_overrides({"TRADER_E": "{a: 1}", "TRADER_F": "[TSLA, GME]"}) == {"e": {"a": 1}, "f": ["TSLA", "GME"]}
    assert env_overrides({"TRADER_G": "- a"}) == {"g": "- a"}


def test_the_jobs_file_resolves_beside_trader_yaml_not_under_home(tmp_path: Path) -> None:
    home = tmp_path / "elsewhere"
    settings = load_settings(None, REPO_ROOT / "configs" / "trader.yaml", env={"TRADER_HOME": str(home)})
    assert settings.config_path(settings.pycron.config) == REPO_ROOT / "configs" / "pycron.yaml"
    assert settings.path(settings.storage.logs_dir) == home.resolve() / "logs"
