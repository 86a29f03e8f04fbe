"""The ``security`` settings: CURVE keys from files or the environment, secrets masked, clear refusals."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import zmq
import zmq.auth
from zmq.utils import z85

from trader.config import Settings, load_settings
from trader.errors import ConfigError
from trader.logsetup import SecretMasker
from trader.messaging.curve import CurveKeys


def keypair() -> tuple[str, str]:
    public, secret = zmq.curve_keypair()
    return public.decode(), secret.decode()


def settings(home: Path, **env: str) -> Settings:
    return load_settings(env={"TRADER_HOME": str(home), **env})


def test_the_default_is_no_curve_and_no_keys(tmp_path: Path) -> None:
    loaded = settings(tmp_path)
    assert loaded.security.mode == "none"
    assert CurveKeys.from_settings(loaded, need_server=True) == CurveKeys.none()


def test_keys_from_the_environment_are_masked_everywhere(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server_public, server_secret = keypair()
    client_public, client_secret = keypair()
    other_public, _ = keypair()
    loaded = settings(tmp_path, TRADER_SECURITY__MODE="curve", TRADER_SECURITY__SERVER__SECRET_KEY=server_secret,
                      TRADER_SECURITY__CLIENT__SECRET_KEY=client_secret,
                      TRADER_SECURITY__ALLOWED_CLIENTS=f"[{other_public!r}]".replace("'", '"'))
    for text in (repr(loaded), str(loaded), loaded.model_dump_json(), repr(CurveKeys.from_settings(loaded))):
        assert server_secret not in text and client_secret not in text
    assert server_secret in loaded.secrets() and client_secret in loaded.secrets()
    record = logging.LogRecord("t", logging.ERROR, __file__, 1, "key is %s", (server_secret,), None)
    SecretMasker(loaded.secrets()).filter(record)
    assert server_secret not in record.getMessage() and "***" in record.getMessage()

    keys = CurveKeys.from_settings(loaded, need_server=True)
    assert keys.server is not None and keys.client is not None
    assert keys.server.public == z85.decode(server_public.encode())  # derived from the secret key
    assert keys.client.server_public == keys.server.public
    assert keys.server.allowed == {z85.decode(client_public.encode()), z85.decode(other_public.encode())}


Z85_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"


def test_a_key_the_yaml_reader_would_take_for_a_comment_an_anchor_or_a_tag_stays_a_key(tmp_path: Path) -> None:
    """Any first character: one key in 30 began with what YAML reads as an anchor, a tag or a comment."""
    tail = "NO:^(4}hIL2BJ#JsOU+f+!fCd-:5YT@QzdcVWE)"  # such a key's 39 other characters
    for prefix in Z85_ALPHABET.replace("[", "").replace("{", ""):  # explicit flow syntax stays a list or mapping
        odd = prefix + tail  # not a valid pair any more; the loader must still keep it as text
        loaded = settings(tmp_path, TRADER_SECURITY__MODE="curve", TRADER_SECURITY__SERVER__SECRET_KEY=odd)
        assert loaded.security.server.secret_key is not None
        assert loaded.security.server.secret_key.get_secret_value() == odd


@pytest.mark.parametrize(("env", "message"), [
    ({"TRADER_SECURITY__MODE": "curve"}, "server's public key is not set"),
    ({"TRADER_SECURITY__MODE": "curve", "TRADER_SECURITY__SERVER__PUBLIC_KEY": keypair()[0]},
     "no client secret key"),
    ({"TRADER_SECURITY__MODE": "tls"}, "security.mode"),
    ({"TRADER_SECURITY__SERVER__SECRET_KEY": "short"}, "40-character Z85"),
    ({"TRADER_SECURITY__SERVR__KEY_FILE": "x"}, "security.servr: unknown key"),
    ({"TRADER_SECURITY__MODE": "curve", "TRADER_SECURITY__SERVER__KEY_FILE": "nowhere.key_secret"},
     "cannot read a CURVE certificate"),
])
def test_a_bad_or_missing_key_is_a_config_error_that_says_what(tmp_path: Path, env: dict[str, str],
                                                             message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        CurveKeys.from_settings(settings(tmp_path, **env), need_server=True)


def test_a_client_host_needs_no_server_secret_and_a_binder_does(tmp_path: Path) -> None:
    zmq.auth.create_certificates(tmp_path, "server")
    _, laptop_secret = zmq.auth.create_certificates(tmp_path, "laptop")
    Path(laptop_secret).chmod(0o600)  # as `trader keys generate` writes it (create_certificates follows the umask)
    laptop = settings(tmp_path, TRADER_SECURITY__MODE="curve",
                      TRADER_SECURITY__SERVER__KEY_FILE=str(tmp_path / "server.key"),  # public only
                      TRADER_SECURITY__CLIENT__KEY_FILE=str(tmp_path / "laptop.key_secret"))
    keys = CurveKeys.from_settings(laptop)
    assert keys.server is None and keys.client is not None
    with pytest.raises(ConfigError, match="server's secret key is not set, and this process binds"):
        CurveKeys.from_settings(laptop, need_server=True)


def test_a_public_key_that_does_not_match_the_secret_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not belong"):
        CurveKeys.from_settings(settings(tmp_path, TRADER_SECURITY__MODE="curve",
                                         TRADER_SECURITY__SERVER__SECRET_KEY=keypair()[1],
                                         TRADER_SECURITY__SERVER__PUBLIC_KEY=keypair()[0]))


def test_a_secret_key_file_others_may_read_is_refused(tmp_path: Path) -> None:
    _, secret_file = zmq.auth.create_certificates(tmp_path, "server")
    secret_file = Path(secret_file)
    loaded = settings(tmp_path, TRADER_SECURITY__MODE="curve", TRADER_SECURITY__SERVER__KEY_FILE=str(secret_file))
    secret_file.chmod(0o600)
    assert CurveKeys.from_settings(loaded, need_server=True).server is not None
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        CurveKeys.from_settings(loaded, need_server=True)
