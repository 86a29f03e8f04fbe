"""The official IB Python client (PyPI's ``ibapi`` 9.81 and ``ibapi-stable`` 10.x) against tws-sim.

Both packages install the module ``ibapi``, so ``install.sh`` puts each in its
own directory inside the venv and each session runs in a subprocess
(``tests/sim/ibapi_session.py``) with only that directory on its path (``-S``:
not even the venv's site-packages). The session reports as JSON what arrived
and every message whose fields the client's decoder did not consume exactly.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.sim.simulator import running_sim
from trader.sim import encoders as enc
from trader.sim.msgids import ServerVersion

SESSION = Path(__file__).with_name("ibapi_session.py")
AAPL = 265598
INFORMATIONAL = {2104, 2106, 2158}
ORDER_CANCELLED = 202
# What every session must have decoded (ids, as both clients' message tables name them differently).
EXPECTED_MESSAGES = {
    1: "tickPrice", 2: "tickSize", 3: "orderStatus", 4: "errorMsg", 5: "openOrder", 6: "updateAccountValue",
    7: "updatePortfolio", 8: "updateAccountTime", 9: "nextValidId", 10: "contractDetails", 11: "execDetails",
    15: "managedAccounts", 17: "historicalData", 46: "tickString", 52: "contractDetailsEnd", 53: "openOrderEnd",
    54: "accountDownloadEnd", 55: "execDetailsEnd", 58: "marketDataType", 59: "commissionReport",
    61: "position", 62: "positionEnd", 79: "symbolSamples", 101: "completedOrder", 102: "completedOrdersEnd",
}


def client_dir(name: str) -> Path:
    """Return the directory ``install.sh`` installs one ibapi into; skip the test if it is not there."""
    target = Path(sys.prefix) / name
    if not (target / "ibapi" / "__init__.py").is_file():
        pytest.skip(f"the official IB client is not installed in {target}: ./install.sh installs it there "
                    f"from PyPI (if the registry refused it, install.sh said so)")
    return target


@pytest.fixture(scope="module")
def ibapi_981() -> Path:
    return client_dir("ibapi-9.81")


@pytest.fixture(scope="module")
def ibapi_10() -> Path:
    return client_dir("ibapi-10")


def run_session(target: Path, *extra: str) -> dict[str, Any]:
    """Run the scripted ibapi session against an in-process tws-sim and return its report."""
    async def scenario() -> dict[str, Any]:
        async with running_sim() as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
            env["PYTHONPATH"] = str(target)
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-S", str(SESSION), "--port", str(server.port), *extra,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env)
            try:
                out, err = await asyncio.wait_for(proc.communicate(), 60)
            except TimeoutError:
                proc.kill()
                await proc.wait()
                raise AssertionError("the ibapi session did not finish within 60s") from None
            assert proc.returncode == 0, f"session exited {proc.returncode}: {err.decode()[-3000:]}"
            report: dict[str, Any] = json.loads(out)
            report["stderr"] = err.decode()[-3000:]
            return report

    return asyncio.run(scenario())


def decoded_ids(report: dict[str, Any]) -> set[int]:
    return set(map(int, report["message_ids"]))


def check_session(report: dict[str, Any], target: Path) -> None:
    """Assert the session ran to the end, every message decoded exactly, and what arrived is right."""
    assert Path(report["ibapi_file"]).is_relative_to(target), report["ibapi_file"]
    assert report["failure"] is None, f"{report['failure']} after {report['steps']}\n{report['stderr']}"
    assert report["problems"] == [], json.dumps(report["problems"], indent=1)[:6000]
    missing = {name for msg_id, name in EXPECTED_MESSAGES.items() if msg_id not in decoded_ids(report)}
    assert not missing, f"never received: {sorted(missing)}"
    codes = {code for _, code, _ in report["errors"]}
    assert codes <= INFORMATIONAL | {ORDER_CANCELLED}, report["errors"]

    [details] = report["contracts"]
    assert details["conId"] == AAPL and details["minTick"] == 0.01 and details["primaryExchange"] == "NASDAQ"
    samples = {s["symbol"]: s for s in report["symbols"]}
    assert samples["AAPL"]["conId"] == AAPL and "OPT" in samples["AAPL"]["derivatives"]
    assert {"price:1", "price:2", "size:0", "size:3"} <= set(report["tick_types"])
    assert report["prices_positive"] and report["market_data_types"] == [1]
    assert report["bars"] == 60 and report["last_bar"]["high"] >= report["last_bar"]["low"] > 0

    mkt, lmt = str(report["order_ids"]["mkt"]), str(report["order_ids"]["lmt"])
    final = report["statuses"][mkt][-1]
    assert final["status"] == "Filled" and final["filled"] == 10 and final["remaining"] == 0
    live = [e for e in report["executions"]["-1"] if str(e["orderId"]) == mkt]
    assert sum(e["shares"] for e in live) == 10 and {e["side"] for e in live} == {"BOT"}
    assert {e["conId"] for e in live} == {AAPL} and {e["permId"] for e in live} == {final["permId"]}
    fees = {c["execId"]: c for c in report["commissions"]}
    assert sum(fees[e["execId"]]["commission"] for e in live) == 1.0  # IB's $1 minimum
    assert {fees[e["execId"]]["currency"] for e in live} == {"USD"}
    requested = report["executions"]["5"]
    assert sorted(e["execId"] for e in requested) == sorted(e["execId"] for e in live)

    resting = report["open_orders"][lmt]
    assert resting[0]["status"] == "Submitted" and resting[0]["orderType"] == "LMT"
    assert resting[0]["totalQuantity"] == 10 and resting[0]["lmtPrice"] > 0
    assert len(resting) >= 2  # and again from reqOpenOrders
    assert report["statuses"][lmt][-1]["status"] == "Cancelled"

    assert [(p["conId"], p["position"]) for p in report["positions"]] == [(AAPL, 10)]
    assert report["positions"][0]["avgCost"] == pytest.approx(final["avgFillPrice"] + 0.1)  # $1 over 10
    assert [(p["conId"], p["position"]) for p in report["portfolio"]][-1] == (AAPL, 10)
    assert report["account_values"] > 10 and report["account_times"]
    assert any(c["permId"] == final["permId"] and c["status"] == "Filled" for c in report["completed"])


def test_ibapi_981_negotiates_157_and_decodes_every_message(ibapi_981: Path) -> None:
    report = run_session(ibapi_981)
    assert report["ibapi_version"].startswith("9.81")
    assert report["server_version"] == ServerVersion.MIN == 157
    check_session(report, ibapi_981)


def test_ibapi_10_negotiates_the_newest_version_and_decodes_every_message(ibapi_10: Path) -> None:
    report = run_session(ibapi_10)
    assert report["ibapi_version"].startswith("10.")
    assert report["client_versions"][1] > ServerVersion.MAX
    assert report["server_version"] == ServerVersion.MAX >= 176
    check_session(report, ibapi_10)


# Each version at which a message the session receives (or a request it sends) changes layout.
GATES = [157, 159, 160, 162, 163, 164, 166, 169, 170, 176, 177]


@pytest.mark.parametrize("version", GATES)
def test_ibapi_10_decodes_every_message_at_each_older_version(ibapi_10: Path, version: int) -> None:
    report = run_session(ibapi_10, "--max-version", str(version))
    assert report["server_version"] == version
    check_session(report, ibapi_10)


@pytest.fixture
def surplus_and_shortage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Make tws-sim send position with one field too many and updateAccountTime with one too few."""
    position, account_time = enc.position, enc.account_update_time

    def long_position(account: str, inst: Any, quantity: Decimal, avg_cost: Decimal) -> enc.Fields:
        return [*position(account, inst, quantity, avg_cost), "surplus"]

    monkeypatch.setattr(enc, "position", long_position)
    monkeypatch.setattr(enc, "account_update_time", lambda when: account_time(when)[:-1])
    yield


@pytest.mark.parametrize("name", ["ibapi-9.81", "ibapi-10"])
def test_the_check_reports_leftover_and_missing_fields(surplus_and_shortage: None, name: str) -> None:
    target = client_dir(name)
    report = run_session(target)
    found = {(p["message"], p["kind"]) for p in report["problems"]}
    assert ("POSITION_DATA", "leftover") in found
    assert ("ACCT_UPDATE_TIME", "missing") in found
    assert all(p["message"] in ("POSITION_DATA", "ACCT_UPDATE_TIME") for p in report["problems"]), found
