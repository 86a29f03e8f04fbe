"""`trader universes` end to end: bootstrap on a real tws-sim, then get/list/create/add/remove/destroy; resolve
answers from a universe without a broker request (counted in tws-sim's request log)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.cli.invoke import data, ok, refused, trader
from tests.conftest import StackEnv, TradingStack, call
from trader.sim.catalogue import Catalogue, load_sim_config


def contract_requests(stack: TradingStack, client_id: int = 1) -> int:
    """Return how many reqContractDetails tws-sim received from ``client_id`` (trader_service's)."""
    log = call(stack.tws_endpoint, "requests", 10_000)
    return sum(1 for r in log if r["message"] == "REQ_CONTRACT_DATA" and r["client_id"] == client_id)


def catalogue_keys(*exchanges: str) -> set[str]:
    catalogue = Catalogue.from_config(load_sim_config(), datetime.now(UTC).date())
    now = datetime.now(UTC)
    return {i.contract.key for i in catalogue if (i.contract.primary_exchange or i.contract.exchange) in exchanges
            and str(i.contract.sec_type) != "OPT" and not i.expired(now)}


@pytest.mark.slow
def test_bootstrap_then_resolve_from_the_universe_and_crud(trading_stack: TradingStack) -> None:
    got = data("universes", "bootstrap", "--exchange", "NASDAQ")
    assert got["name"] == "nasdaq" and got["pace"] == 0 and got["searches"] > 36  # tws-sim: no pace; prefixes
    members = data("universes", "get", "nasdaq")["members"]
    assert {m["key"] for m in members} == catalogue_keys("NASDAQ") and len(members) == got["members"] >= 300
    aapl = next(m for m in members if m["key"] == "AAPL.STK")
    assert (aapl["conid"], aapl["primary_exchange"], aapl["long_name"]) == (265598, "NASDAQ", "APPLE INC")

    futures = data("universes", "bootstrap", "--exchange", "CME", "--exchange", "CBOT", "--name", "futures",
                   "--sec-type", "FUT")
    keys = {m["key"] for m in data("universes", "get", "futures")["members"]}
    assert keys == catalogue_keys("CME", "CBOT") and futures["members"] == len(keys) >= 20
    refused(9, "universes", "bootstrap", "--exchange", "NASDAQ")  # exists: --replace to build it again

    listed = {u["name"]: u for u in data("universes", "list")}
    assert set(listed) == {"nasdaq", "futures"} and listed["nasdaq"]["members"] == len(members)
    assert listed["nasdaq"]["source"] == "bootstrap NASDAQ"

    # resolve: a generated NASDAQ stock, held by the universe, costs trader_service no broker request
    symbol = next(m["symbol"] for m in members if m["conid"] >= 500_000_000)
    before = contract_requests(trading_stack)
    [row] = data("resolve", symbol)
    assert row["universes"] == ["nasdaq"] and row["contract"]["primary_exchange"] == "NASDAQ"
    [es] = data("resolve", "ES")  # the front month, from the futures universe
    assert es["universes"] == ["futures"] and es["key"] in keys
    assert contract_requests(trading_stack) == before
    [spx] = data("resolve", "SPX")  # in no universe: the broker is asked (the count can move)
    assert spx["universes"] == [] and contract_requests(trading_stack) > before
    assert "nasdaq" in ok("resolve", symbol).stdout  # the table names the universe

    # create / add / remove / destroy, through trader_service's resolve
    assert data("universes", "create", "tech", "AAPL", "MSFT")["members"] == 2
    refused(9, "universes", "create", "tech")
    added = data("universes", "add", "tech", "NVDA", "AAPL")
    assert added == {"name": "tech", "members": 3, "added": ["NVDA.STK"], "not_resolved": []}
    assert data("universes", "remove", "tech", "msft")["removed"] == ["MSFT.STK"]
    assert "NOPE" in refused(4, "universes", "remove", "tech", "NOPE")
    assert [m["key"] for m in data("universes", "get", "tech")["members"]] == ["AAPL.STK", "NVDA.STK"]
    table = ok("universes", "get", "tech").stdout
    assert "tech: 2 members" in table and "NVIDIA CORP" in table
    refused(4, "universes", "add", "tech", "NOSUCHSYMBOL")
    assert trader("universes", "destroy", "tech", stdin="n\n").exit_code != 0  # asked, and not confirmed
    assert data("universes", "destroy", "tech", "--force") == {"name": "tech", "destroyed": True}
    refused(4, "universes", "destroy", "tech", "--force")
    assert {u["name"] for u in data("universes", "list")} == {"nasdaq", "futures"}


def test_without_the_stack_symbols_cannot_be_resolved_and_say_why(stack_env: StackEnv) -> None:
    why = refused(7, "universes", "create", "tech", "AAPL")
    assert "needs a running trader_service" in why and "trader up" in why
    assert data("universes", "list") == []  # nothing was created
    assert data("universes", "create", "empty")["members"] == 0  # no symbols: no service needed
    why = refused(7, "universes", "bootstrap", "--exchange", "NYSE", "--timeout", "0.5", "--pace", "0")
    assert "no IB connection" in why
    refused(2, "universes", "get", "not/a/name")
    assert "no universes" not in ok("universes", "list").stdout and "empty" in ok("universes", "list").stdout
