"""What the resolver asks the broker for, from a symbol or a contract key and the hints: no I/O."""

from __future__ import annotations

from decimal import Decimal

import pytest

from trader.brokers.records import ContractQuery
from trader.domain import SecType
from trader.errors import ValidationError
from trader.trading.instruments import _query


def test_an_option_key_names_expiry_right_and_strike() -> None:
    assert _query("AAPL.OPT.20261218.C150_5", None, None, None, None) == ContractQuery(
        "AAPL", SecType.OPT, exchange="SMART", expiry="20261218", right="C", strike=Decimal("150.5"))


@pytest.mark.parametrize("key", ["AAPL.OPT.20261218.C", "AAPL.OPT.20261218.Cabc", "AAPL.OPT.X.C150",
                                 "AAPL.OPT.20261218.Q150", "AAPL.OPT.20261218.Cinf"])
def test_a_malformed_option_key_is_a_validation_error(key: str) -> None:
    with pytest.raises(ValidationError, match="option key"):
        _query(key, None, None, None, None)


def test_keys_and_pairs_become_ib_queries() -> None:
    assert _query("EUR.USD", None, None, None, None) == ContractQuery("EUR", SecType.CASH, exchange="IDEALPRO")
    assert _query("ES.FUT.20261218", None, None, None, None).expiry == "20261218"
    assert _query("ES.FUT.ESZ6", None, None, None, None).local_symbol == "ESZ6"
    assert _query("ES", "FUT", "CME", None, "2026-12") == ContractQuery("ES", SecType.FUT, exchange="CME",
                                                                      expiry="202612")
    assert _query("brk_b.stk", None, None, None, None) == ContractQuery("BRK B", exchange="SMART")
