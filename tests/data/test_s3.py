"""The market store on S3, against a local moto server (a process of its own), with its secret never shown."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pandas as pd
import pytest

from tests.data.bars import MIN, T0, bars
from trader.data import SymbolMeta, open_store
from trader.data.arctic import ArcticStore
from trader.data.backends import mask_uri
from trader.data.backup import backup, restore
from trader.errors import Conflict, StorageError

SECRET = "s3cr3t-Value-42"
KEY = "AAPL.STK"


@contextlib.contextmanager
def moto_server(port: int) -> Iterator[int]:
    """Run moto's S3 server on ``port`` with the bucket ``market``; stop it on leaving."""
    # A process, not moto's ThreadedMotoServer: arcticdb holds the GIL while it waits
    # for S3's answer, so a server thread in the same process would never give one.
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.1)
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", aws_access_key_id="trader",
                     aws_secret_access_key=SECRET, region_name="us-east-1").create_bucket(Bucket="market")
        yield port
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def moto_port(free_port) -> Iterator[int]:  # type: ignore[no-untyped-def]
    with moto_server(free_port()) as port:
        yield port


def uri(port: int, bucket: str = "market") -> str:
    return f"s3://127.0.0.1:{bucket}?port={port}&access=trader&secret={SECRET}"


def test_bars_ticks_records_and_snapshots_round_trip_on_s3(moto_port: int) -> None:
    store = ArcticStore(uri(moto_port))
    meta = SymbolMeta(KEY, source="polygon", timezone="America/New_York")
    store.write_bars(KEY, "1m", bars(T0, 60), start=T0, end=T0 + 60 * MIN, meta=meta)
    store.write_bars(KEY, "1m", bars(T0 + 30 * MIN, 10, base=300.0), start=T0 + 30 * MIN, end=T0 + 60 * MIN)
    stored = store.read_bars(KEY, "1m")
    assert len(stored) == 40 and stored.index.is_unique and stored["open"].iloc[30] == 300.0
    assert store.meta(KEY, "1m") == meta
    store.append_ticks(KEY, pd.DataFrame({"bid": [1.0, 1.1]}, index=pd.DatetimeIndex([T0, T0 + MIN])))
    store.put_record("universes", "tech", {"members": [KEY]})
    store.snapshot("s3-day")
    store.write_bars(KEY, "1m", bars(T0, 0), start=T0, end=T0 + 60 * MIN)
    assert len(store.read_bars(KEY, "1m", as_of="s3-day")) == 40
    # a second client (another machine) sees it all
    other = open_store(uri=uri(moto_port))
    assert other.bar_symbols() == {"1m": [KEY]} and len(other.read_ticks(KEY)) == 2
    assert other.get_record("universes", "tech") == {"members": [KEY]}
    assert other.snapshots() == ["s3-day"]


def test_an_s3_store_backs_up_to_a_local_directory(moto_port: int, tmp_path: Path) -> None:
    store = ArcticStore(uri(moto_port))
    store.write_bars(KEY, "1d", bars(T0.normalize(), 5, step=pd.Timedelta(days=1)),
                     start=T0.normalize(), end=T0.normalize() + pd.Timedelta(days=5))
    manifest = backup(store, tmp_path / "copy")
    assert [(e.library, e.symbol, e.rows) for e in manifest.symbols] == [("bars.1d", KEY, 5)]
    assert SECRET not in (tmp_path / "copy" / "manifest.json").read_text()


def test_a_restore_into_s3_goes_into_an_empty_store_only(moto_port: int, tmp_path: Path) -> None:
    local = ArcticStore(f"lmdb://{tmp_path / 'local'}")
    local.write_bars(KEY, "1m", bars(T0, 30), start=T0, end=T0 + 30 * MIN)
    backup(local, tmp_path / "copy")
    used = ArcticStore(uri(moto_port))
    used.write_bars("MSFT.STK", "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    with pytest.raises(Conflict, match="path_prefix"):  # no rename on S3: the swap is the setting's change
        restore(used, tmp_path / "copy", force=True)
    assert used.bar_symbols() == {"1m": ["MSFT.STK"]}
    empty = ArcticStore(uri(moto_port) + "&path_prefix=restored")
    restore(empty, tmp_path / "copy")
    pd.testing.assert_frame_equal(empty.read_bars(KEY, "1m"), local.read_bars(KEY, "1m"))


def test_the_secret_is_masked_in_repr_logs_and_errors(moto_port: int, caplog: pytest.LogCaptureFixture,
                                                       capfd: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    store = ArcticStore(uri(moto_port))
    assert SECRET not in repr(store) and SECRET not in store.uri and "secret=***" in repr(store)
    store.write_bars(KEY, "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    store.snapshot("logged")
    with pytest.raises(StorageError) as caught:
        ArcticStore(uri(moto_port, bucket="no-such-bucket")).write_bars(KEY, "1m", bars(T0, 5), start=T0,
                                                                        end=T0 + 5 * MIN)
    message = str(caught.value)
    assert "the S3 bucket does not exist" in message and "secret=***" in message
    assert SECRET not in message and SECRET not in str(caught.value.to_wire())
    assert "snapshot logged" in caplog.text and SECRET not in caplog.text
    out, err = capfd.readouterr()
    assert SECRET not in out + err


def test_mask_uri_hides_secrets_and_passwords_only() -> None:
    assert mask_uri("s3s://s3.eu-west-1.amazonaws.com:bkt?access=AK&secret=XY%2Fz&region=eu-west-1") == (
        "s3s://s3.eu-west-1.amazonaws.com:bkt?access=AK&secret=***&region=eu-west-1")
    assert mask_uri("mongodb://user:pw@host:27017") == "mongodb://user:***@host:27017"
    assert mask_uri("lmdb:///data/arctic?map_size=5GB") == "lmdb:///data/arctic?map_size=5GB"


def test_a_failed_index_read_is_a_storage_error_naming_the_masked_store(moto_port: int) -> None:
    store = ArcticStore(uri(moto_port))
    store.write_bars(KEY, "1m", bars(T0, 5), start=T0, end=T0 + 5 * MIN)
    s3 = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{moto_port}", aws_access_key_id="trader",
                      aws_secret_access_key=SECRET, region_name="us-east-1")
    data = [o["Key"] for o in s3.list_objects_v2(Bucket="market")["Contents"] if "/tdata/" in o["Key"]]
    assert data
    for name in data:  # the bars' data gone, their index and version kept: the read fails in ArcticDB
        s3.delete_object(Bucket="market", Key=name)
    with pytest.raises(StorageError) as caught:
        store.read_index(KEY, "1m")
    assert caught.value.details["store"] == store.uri and SECRET not in str(caught.value.to_wire())
    assert str(caught.value).startswith(f"{KEY}: cannot read the bars' index: ")


def test_reads_of_an_s3_store_gone_down_are_storage_errors_in_words_within_seconds(free_port) -> None:  # type: ignore[no-untyped-def]
    with moto_server(free_port()) as port:
        store = ArcticStore(uri(port))
        store.put_record("universes", "u", {"members": []})
        store.append_ticks(KEY, pd.DataFrame({"bid": [1.0]}, index=pd.DatetimeIndex([T0])))
    started = time.monotonic()
    with pytest.raises(StorageError) as caught:  # not arcticdb's own RuntimeError (nor exit code 1)
        store.get_record("universes", "u")
    took = time.monotonic() - started
    assert "the S3 endpoint does not answer" in str(caught.value) and SECRET not in str(caught.value)
    assert took < 10, f"a down S3 took {took:.1f} s to fail"  # ArcticDB's own retries: ~26 s


def test_the_settings_s3_timeouts_and_tries_reach_arcticdb_and_the_aws_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from arcticdb.config import get_config_int, set_config_int

    from trader.config import Settings, StorageSettings

    monkeypatch.delenv("AWS_MAX_ATTEMPTS", raising=False)  # monkeypatch puts back what was there
    monkeypatch.delenv("AWS_RETRY_MODE", raising=False)
    before = {name: get_config_int(name) for name in ("S3Storage.ConnectTimeoutMs", "S3Storage.RequestTimeoutMs")}
    settings = Settings(storage=StorageSettings(arctic_uri="s3://127.0.0.1:none?port=1&access=a&secret=b",
                                                s3_connect_timeout_ms=1234, s3_request_timeout_ms=5678,
                                                s3_max_attempts=2))
    try:
        with pytest.raises(StorageError):
            open_store(settings).snapshots()  # port 1: refused at once
        assert get_config_int("S3Storage.ConnectTimeoutMs") == 1234
        assert get_config_int("S3Storage.RequestTimeoutMs") == 5678
        assert os.environ["AWS_MAX_ATTEMPTS"] == "2" and os.environ["AWS_RETRY_MODE"] == "standard"
    finally:
        for name, value in before.items():
            set_config_int(name, value if value is not None else getattr(StorageSettings(), _FIELD[name]))


_FIELD = {"S3Storage.ConnectTimeoutMs": "s3_connect_timeout_ms", "S3Storage.RequestTimeoutMs": "s3_request_timeout_ms"}
