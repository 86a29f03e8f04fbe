"""``--account`` where the login manages several accounts: tws-sim with two, the CLI against the real stack."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.cli.invoke import data, ok, refused
from tests.conftest import REPO, StackEnv, TradingStack, started_trading_stack
from tests.waiting import wait_until_blocking

pytestmark = pytest.mark.slow

MAIN, OTHER = "DU1234567", "DU7654321"


@pytest.fixture
def advisor_stack(request: pytest.FixtureRequest, stack_env: StackEnv, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Iterator[TradingStack]:
    """The trading stack on a tws-sim whose login manages two accounts; the settings' default: the param's."""
    default = getattr(request, "param", MAIN)
    configs = tmp_path / "configs"
    shutil.copytree(REPO / "configs", configs)
    sim = configs / "sim.yaml"
    text = sim.read_text()
    assert f"  id: {MAIN}\n" in text
    sim.write_text(text.replace(f"  id: {MAIN}\n", f"  id: {MAIN}\n  managed: [{OTHER}]\n", 1))
    env = {"TRADER_CONFIG": str(configs / "trader.yaml"), **({"TRADER_IB__ACCOUNT": default} if default else {})}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with started_trading_stack(stack_env, **env) as stack:
        yield stack


def held(*args: str) -> list[tuple[str, str, Decimal]]:
    return sorted((p["account"], p["contract"]["key"], Decimal(str(p["quantity"])))
                  for p in data("positions", *args) if Decimal(str(p["quantity"])))


def test_account_option_names_one_of_several(advisor_stack: TradingStack) -> None:
    main = data("account")
    assert (main["account"], main["accounts"]) == (MAIN, [MAIN, OTHER])
    other = data("account", "--account", OTHER)
    assert other["account"] == OTHER and "NetLiquidation" in other["values"]
    assert OTHER in ok("account", "--account", OTHER).stdout
    assert "unknown account 'DU0000000'" in refused(4, "account", "--account", "DU0000000")
    assert "unknown account" in refused(4, "trade", "buy", "AAPL", "-q", "1", "--account", "DU0000000")
    assert "unknown account" in refused(4, "positions", "--account", "DU0000000")

    placed = data("trade", "buy", "AAPL", "-q", "5", "--account", OTHER, "--id", "acct-o")
    assert (placed["order"]["account"], placed["order"]["status"]) == (OTHER, "FILLED")
    data("trade", "buy", "AAPL", "-q", "2", "--id", "acct-m")
    wait_until_blocking(lambda: held() == [(MAIN, "AAPL.STK", 2), (OTHER, "AAPL.STK", 5)], what="both positions")
    assert held("--account", OTHER) == [(OTHER, "AAPL.STK", 5)]
    assert held("--account", MAIN) == [(MAIN, "AAPL.STK", 2)]
    wait_until_blocking(lambda: [(p["account"], Decimal(str(p["quantity"]))) for p in data("portfolio", "--account", MAIN)]
                        == [(MAIN, 2)], what="the default account's portfolio")

    assert "nothing to close: account DU1234567 holds no MSFT" in ok("close", "MSFT").stdout
    closed = data("close", "AAPL", "--account", OTHER)
    (sent,) = closed["orders"]
    assert closed["account"] == OTHER and (sent["order"]["account"], sent["order"]["action"]) == (OTHER, "SELL")
    wait_until_blocking(lambda: held() == [(MAIN, "AAPL.STK", 2)], what="the other account flat")


@pytest.mark.parametrize("advisor_stack", [""], indirect=True)
def test_with_several_accounts_and_no_default_one_must_be_named(advisor_stack: TradingStack) -> None:
    assert "several accounts (DU1234567, DU7654321): name one with --account" in refused(3, "account")
    assert "name one with --account" in refused(3, "trade", "buy", "AAPL", "-q", "1")
    assert "name one with --account" in refused(3, "close", "--all")
    assert data("account", "--account", OTHER)["account"] == OTHER
    data("trade", "buy", "AAPL", "-q", "3", "--account", OTHER)
    data("trade", "sell", "MSFT", "-q", "1", "--account", MAIN)
    wait_until_blocking(lambda: held() == [(MAIN, "MSFT.STK", -1), (OTHER, "AAPL.STK", 3)], what="both accounts")
    closed = data("close", "--all", "--account", MAIN)
    assert [(o["order"]["account"], o["order"]["contract"]["key"]) for o in closed["orders"]] == [(MAIN, "MSFT.STK")]
    wait_until_blocking(lambda: held() == [(OTHER, "AAPL.STK", 3)], what="the first account flat")
