"""Connecting the unmodified ib_async client to tws-sim: handshake, startup sync, many clients, bad input."""

from __future__ import annotations

import asyncio
import struct
import time
from datetime import UTC, datetime

import pytest
from ib_async import IB

from tests.sim.simulator import RawClient, connect, running_sim, wait_for
from trader.sim.wire import encode_message, frame


def test_connect_completes_quickly_and_syncs() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            started = time.monotonic()
            ib = await connect(server, 7)
            elapsed = time.monotonic() - started
            assert elapsed < 1.0, f"connectAsync took {elapsed:.2f}s"
            assert ib.isConnected() and ib.client.serverVersion() == 178
            assert ib.managedAccounts() == ["DU1234567"]
            assert ib.client.getReqId() >= 1
            values = {v.tag: v.value for v in ib.accountValues() if v.currency in ("USD", "")}
            assert values["NetLiquidation"] == "1000000.00"
            now = await ib.reqCurrentTimeAsync()
            assert abs((now - datetime.now(UTC)).total_seconds()) < 5
            seen = {r.message for r in server.request_log if r.client_id == 7}
            assert any(r.message == "START_API" and r.fields[2] == "7" for r in server.request_log)
            assert {"REQ_POSITIONS", "REQ_OPEN_ORDERS", "REQ_COMPLETED_ORDERS", "REQ_ACCT_DATA",
                    "REQ_ACCOUNT_UPDATES_MULTI", "REQ_EXECUTIONS", "REQ_CURRENT_TIME"} <= seen
            ib.disconnect()

    asyncio.run(scenario())


def test_several_clients_at_once() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            clients = await asyncio.gather(*(connect(server, cid) for cid in (1, 2, 3, 0)))
            assert all(ib.isConnected() for ib in clients)
            assert sorted(server.sessions) == [0, 1, 2, 3]
            times = await asyncio.gather(*(ib.reqCurrentTimeAsync() for ib in clients))
            assert len(times) == 4
            clients[1].disconnect()
            await wait_for(lambda: 2 not in server.sessions, what="client 2 gone")
            assert (await clients[0].reqCurrentTimeAsync()) is not None
            for ib in clients:
                ib.disconnect()

    asyncio.run(scenario())


def test_a_duplicate_client_id_gets_error_326_and_is_closed() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            first = await connect(server, 5)
            second = IB()
            errors: list[tuple[int, int]] = []
            second.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
            with pytest.raises((TimeoutError, ConnectionError)):
                await second.connectAsync("127.0.0.1", server.port, clientId=5, timeout=1)
            assert (-1, 326) in errors
            assert not second.isConnected()
            assert first.isConnected() and await first.reqCurrentTimeAsync()
            raw = await RawClient.open(server.port)
            raw.send([71, 2, 5, ""])
            message = await raw.wait_message(lambda m: m[0] == "4")
            assert message[3] == "326"
            assert await raw.closed_by_server()
            first.disconnect()

    asyncio.run(scenario())


def test_bad_requests_get_ib_errors_and_do_not_disturb_anyone() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            raw = await RawClient.open(server.port, client_id=2)
            raw.send([999, 1])  # unknown message id
            unknown = await raw.wait_message(lambda m: m[0] == "4" and "unknown message id" in m[4])
            assert unknown[3] == "320"
            raw.send([9, 8, 42, 0, "AAPL"])  # reqContractDetails cut short
            short = await raw.wait_message(lambda m: m[0] == "4" and m[2] == "42")
            assert short[3] == "320" and "missing field" in short[4]
            raw.send([8, 1, "abc"])  # reqIds with a non-number
            await raw.wait_message(lambda m: m[0] == "4" and "numIds" in m[4])
            raw.send([49, 1, "extra"])  # reqCurrentTime with a trailing field
            await raw.wait_message(lambda m: m[0] == "4" and "trailing" in m[4])
            raw.send([49, 1])  # and the session still answers properly
            await raw.wait_message(lambda m: m[0] == "49")
            assert await ib.reqCurrentTimeAsync()
            raw.close()

            cut = await RawClient.open(server.port, client_id=3)
            cut.writer.write(struct.pack(">I", 100) + b"49\0")  # leaves in the middle of a message
            cut.close()
            await wait_for(lambda: 3 not in server.sessions, what="client 3 gone")

            rude_reader, rude_writer = await asyncio.open_connection("127.0.0.1", server.port)
            rude_writer.write(b"GET / HTTP/1.0\r\n\r\n")
            assert await rude_reader.read() == b""  # closed without a word
            rude_writer.close()

            huge = await RawClient.open(server.port, client_id=4)
            huge.writer.write(struct.pack(">I", 64 * 1024 * 1024))
            assert await huge.closed_by_server()
            assert ib.isConnected() and await ib.reqCurrentTimeAsync()
            assert sorted(server.sessions) == [1]
            ib.disconnect()

    asyncio.run(scenario())


def test_versions_are_negotiated_per_client() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            old = await RawClient.open(server.port, versions="v100..157", client_id=1)
            assert old.messages[0][0] == "157"
            newer = await RawClient.open(server.port, versions="v100..187", client_id=2)
            assert newer.messages[0][0] == "178"
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"API\0" + frame(b"v179..190"))  # nothing in common: closed
            assert await reader.read() == b""
            writer.close()
            for raw in (old, newer):
                raw.close()

    asyncio.run(scenario())


def test_control_drop_delay_and_request_log() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            ib = await connect(server, 1)
            server.set_response_delay(0.3)
            started = time.monotonic()
            await ib.reqCurrentTimeAsync()
            assert time.monotonic() - started >= 0.3
            server.set_response_delay(0)
            assert server.recent_requests(1)[0]["message"] == "REQ_CURRENT_TIME"
            assert server.drop_all_connections() == 1
            await wait_for(lambda: not ib.isConnected(), what="client dropped")
            again = await connect(server, 1)  # the client id is free again
            assert again.isConnected()
            again.disconnect()

    asyncio.run(scenario())


def test_requests_before_start_api_are_refused() -> None:
    async def scenario() -> None:
        async with running_sim() as server:
            raw = await RawClient.open(server.port)
            raw.writer.write(encode_message([49, 1]))
            refused = await raw.wait_message(lambda m: m[0] == "4")
            assert refused[3] == "504"
            raw.close()

    asyncio.run(scenario())
