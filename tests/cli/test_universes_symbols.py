"""`universes create/add` name each symbol they could not resolve (exit non-zero); `get` lists members by key."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.invoke import data, trader
from tests.conftest import StackEnv, TradingStack
from trader.config import load_settings
from trader.data.factory import open_store
from trader.data.requests import universe_keys
from trader.errors import NotFound


def test_add_names_each_symbol_it_could_not_resolve(trading_stack: TradingStack) -> None:
    made = trader("universes", "create", "tech", "MSFT", "NOSUCHSYMBOL")
    assert made.exit_code == 4 and "created tech: 1 member" in made.stdout
    assert "1 of 2 symbols not resolved (NOSUCHSYMBOL:" in made.stderr
    result = trader("universes", "add", "tech", "AAPL", "ZZZZ", "NVDA", "QQQQQ")
    assert result.exit_code == 4, result.output
    assert "tech: added 2 instruments (AAPL.STK, NVDA.STK); 3 members" in result.stdout
    assert "2 of 4 symbols not resolved (ZZZZ: " in result.stderr and "; QQQQQ: " in result.stderr
    answer = trader("--json", "universes", "add", "tech", "ZZZZ")
    assert answer.exit_code == 4 and json.loads(answer.stdout)["not_resolved"] == ["ZZZZ"]
    members = data("universes", "get", "tech")["members"]
    assert [m["key"] for m in members] == ["AAPL.STK", "MSFT.STK", "NVDA.STK"]  # by key, not as they joined
    table = trader("universes", "get", "tech").stdout
    assert table.index("AAPL.STK") < table.index("MSFT.STK") < table.index("NVDA.STK")


def test_a_missing_universe_is_named_in_the_singular(stack_env: StackEnv, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=r"^no universe named nosuch \(see `trader universes list`\)$"):
        universe_keys(open_store(load_settings()), "nosuch")
