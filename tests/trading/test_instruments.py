"""What the resolver asks IB for, from a symbol or a contract key and the hints: no I/O."""

from __future__ import annotations

import pytest

from trader.errors import ValidationError
from trader.trading.instruments import _query


def test_an_option_key_names_expiry_right_and_strike() -> None:
    q = _query("AAPL.OPT.20261218.C150_5", None, None, None, None)
    assert (q.symbol, q.secType, q.lastTradeDateOrContractMonth, q.right, q.strike, q.exchange) == (
        "AAPL", "OPT", "20261218", "C", 150.5, "SMART")


@pytest.mark.parametrize("key", ["AAPL.OPT.20261218.C", "AAPL.OPT.20261218.Cabc", "AAPL.OPT.X.C150",
                                 "AAPL.OPT.20261218.Q150"])
def test_a_malformed_option_key_is_a_validation_error(key: str) -> None:
    with pytest.raises(ValidationError, match="option key"):
        _query(key, None, None, None, None)


def test_keys_and_pairs_become_ib_queries() -> None:
    assert (_query("EUR.USD", None, None, None, None).secType, _query("ES.FUT.20261218", None, None, None, None)
            .lastTradeDateOrContractMonth) == ("CASH", "20261218")
    stock = _query("brk_b.stk", None, None, None, None)
    assert (stock.symbol, stock.secType, stock.exchange, stock.currency) == ("BRK B", "STK", "SMART", "USD")
