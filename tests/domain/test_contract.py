"""Tests for Contract: validation per security type and the topic-safe key."""

from __future__ import annotations

import dataclasses
import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trader.domain import Contract, Right, SecType
from trader.errors import ValidationError
from trader.messaging import codec

TOPIC_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


def test_a_stock_needs_only_a_symbol() -> None:
    contract = Contract("AAPL")
    assert contract.sec_type is SecType.STK
    assert (contract.exchange, contract.currency) == ("SMART", "USD")
    assert contract.key == "AAPL.STK"


@pytest.mark.parametrize(
    ("contract", "key"),
    [
        (Contract("AAPL", SecType.STK, primary_exchange="NASDAQ", conid=265598), "AAPL.STK"),
        (Contract("SPX", SecType.IND, exchange="CBOE"), "SPX.IND"),
        (Contract("XAUUSD", SecType.CMDTY), "XAUUSD.CMDTY"),
        (Contract("EUR", SecType.CASH, exchange="IDEALPRO"), "EUR.CASH.USD"),
        (Contract("EUR", SecType.CASH, exchange="IDEALPRO", currency="JPY"), "EUR.CASH.JPY"),
        (Contract("SAP", SecType.STK, currency="EUR"), "SAP.STK.EUR"),
        (Contract("ES", SecType.FUT, exchange="CME", expiry=date(2026, 12, 18)), "ES.FUT.202612"),
        (Contract("ES", SecType.FUT, exchange="CME", local_symbol="ESZ6"), "ES.FUT.ESZ6"),
        # The contract month, not the last trade date's: CLF7 is January 2027, last traded in December 2026.
        (Contract("CL", SecType.FUT, exchange="NYMEX", expiry=date(2026, 12, 17), local_symbol="CLF7"), "CL.FUT.202701"),
        (Contract("CL", SecType.FUT, exchange="NYMEX", expiry=date(2026, 12, 17), contract_month="202701"),
         "CL.FUT.202701"),
        (Contract("CL", SecType.FUT, exchange="NYMEX", contract_month="202701", local_symbol="CLF7"), "CL.FUT.202701"),
        (Contract("ES", SecType.FUT, expiry=date(2026, 12, 18), local_symbol="ESZ26"), "ES.FUT.202612"),
        (
            Contract("FDAX", SecType.FUT, expiry=date(2026, 12, 18), currency="EUR"),
            "FDAX.FUT.202612.EUR",
        ),
        (
            Contract(
                "AAPL",
                SecType.OPT,
                expiry=date(2026, 12, 18),
                strike=Decimal("150.00"),
                right=Right.C,
            ),
            "AAPL.OPT.20261218.C150",
        ),
        (
            Contract(
                "AAPL",
                SecType.OPT,
                expiry=date(2026, 12, 18),
                strike=Decimal("152.5"),
                right=Right.P,
            ),
            "AAPL.OPT.20261218.P152_5",
        ),
        (Contract("BRK B"), "BRK_B.STK"),
        (Contract("BRK.B"), "BRK-2EB.STK"),  # not IB's symbol, but it reads back as it was
    ],
)
def test_key_forms(contract: Contract, key: str) -> None:
    assert contract.key == key
    assert TOPIC_SAFE.match(contract.key)


def test_key_ignores_exchange_and_conid_but_not_expiry_strike_or_right() -> None:
    def option(**changes: object) -> Contract:
        fields: dict[str, object] = {
            "expiry": date(2026, 12, 18),
            "strike": Decimal(150),
            "right": Right.C,
        }
        fields.update(changes)
        return Contract("AAPL", SecType.OPT, **fields)  # type: ignore[arg-type]

    base = option()
    assert option(exchange="CBOE", conid=123).key == base.key
    assert option(expiry=date(2026, 12, 19)).key != base.key
    assert option(strike=Decimal(155)).key != base.key
    assert option(right=Right.P).key != base.key


@settings(max_examples=200, deadline=None)
@given(
    st.text(min_size=1, max_size=12).filter(str.strip),
    st.sampled_from([SecType.STK, SecType.IND, SecType.CASH, SecType.CMDTY]),
    st.text(min_size=1, max_size=4).filter(str.strip),
)
def test_key_is_topic_safe_and_stable_for_any_symbol(
    symbol: str, sec_type: SecType, currency: str
) -> None:
    contract = Contract(symbol, sec_type, currency=currency)
    assert TOPIC_SAFE.match(contract.key)
    assert Contract(symbol, sec_type, currency=currency).key == contract.key
    assert contract.key.split(".")[1] == sec_type.value


@settings(max_examples=100, deadline=None)
@given(
    st.dates(),
    st.decimals(min_value=Decimal("0.001"), max_value=Decimal(99999), places=3),
    st.sampled_from(Right),
)
def test_option_key_is_topic_safe_with_exactly_four_parts(
    expiry: date, strike: Decimal, right: Right
) -> None:
    key = Contract("SPY", SecType.OPT, expiry=expiry, strike=strike, right=right).key
    assert TOPIC_SAFE.match(key)
    assert len(key.split(".")) == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"symbol": ""}, "Contract.symbol must not be empty"),
        ({"symbol": "   "}, "Contract.symbol must not be empty"),
        ({"symbol": 42}, "Contract.symbol must be a string"),
        ({"symbol": "AAPL", "sec_type": "BOND"}, "Contract.sec_type must be one of STK, FUT, OPT"),
        (
            {"symbol": "ES", "sec_type": SecType.FUT},
            "FUT contract 'ES' needs an expiry, a contract_month or a local_symbol",
        ),
        (
            {"symbol": "AAPL", "sec_type": SecType.OPT},
            "OPT contract 'AAPL' needs expiry, strike, right",
        ),
        (
            {
                "symbol": "AAPL",
                "sec_type": SecType.OPT,
                "expiry": date(2026, 1, 16),
                "strike": Decimal(1),
            },
            "needs right",
        ),
        ({"symbol": "AAPL", "strike": Decimal(100)}, "strike and right apply only to OPT"),
        ({"symbol": "AAPL", "right": Right.C}, "strike and right apply only to OPT"),
        ({"symbol": "AAPL", "expiry": date(2026, 1, 16)}, "expiry applies only to FUT and OPT"),
        (
            {
                "symbol": "AAPL",
                "sec_type": "OPT",
                "expiry": "20260116",
                "strike": 150.0,
                "right": "C",
            },
            r"Contract.strike must be a Decimal, got float 150.0: use Decimal\(str\(x\)\)",
        ),
        (
            {"symbol": "AAPL", "sec_type": "OPT", "expiry": "20260116", "strike": -5, "right": "C"},
            "Contract.strike must be > 0",
        ),
        (
            {"symbol": "ES", "sec_type": "FUT", "expiry": "2026-13-01"},
            "Contract.expiry must be a date",
        ),
        ({"symbol": "ES", "sec_type": "FUT", "expiry": datetime(2026, 12, 18)}, "not a datetime"),
        ({"symbol": "AAPL", "conid": 0}, "Contract.conid must be > 0"),
        ({"symbol": "AAPL", "conid": True}, "Contract.conid must be an int"),
        ({"symbol": "AAPL", "currency": ""}, "Contract.currency must not be empty"),
        (
            {"symbol": "ES", "sec_type": "FUT", "local_symbol": "ESZ6", "multiplier": "0"},
            "multiplier must be > 0",
        ),
    ],
)
def test_invalid_contracts_are_refused_with_a_clear_message(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Contract(**kwargs)  # type: ignore[arg-type]


def test_string_forms_are_coerced_to_their_types() -> None:
    contract = Contract("AAPL", "OPT", expiry="20261218", strike="150", right="C", multiplier=100)  # type: ignore[arg-type]
    assert contract.sec_type is SecType.OPT
    assert contract.expiry == date(2026, 12, 18)
    assert contract.strike == Decimal(150) and isinstance(contract.strike, Decimal)
    assert contract.right is Right.C
    assert contract.multiplier == Decimal(100)
    assert contract == Contract(
        "AAPL",
        SecType.OPT,
        expiry=date(2026, 12, 18),
        strike=Decimal(150),
        right=Right.C,
        multiplier=Decimal(100),
    )


def test_contract_is_frozen_and_hashable() -> None:
    contract = Contract("AAPL")
    with pytest.raises(dataclasses.FrozenInstanceError):
        contract.symbol = "MSFT"  # type: ignore[misc]
    assert {contract: 1}[Contract("AAPL")] == 1


def test_optional_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        Contract("AAPL", SecType.STK, "SMART")  # type: ignore[misc]


def test_key_is_computed_once_and_never_carried_or_compared() -> None:
    spy = Contract("SPY", "OPT", expiry="20261218", strike=Decimal("152.5"), right="C")
    assert spy.key == "SPY.OPT.20261218.C152_5"
    assert "key" not in repr(spy)
    assert dataclasses.replace(spy, right="P").key == "SPY.OPT.20261218.P152_5"  # recomputed, not copied
    decoded = codec.decode(codec.encode(spy))
    assert decoded == spy and decoded.key == spy.key
    assert "key" not in [f.name for f in dataclasses.fields(Contract) if f.init]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spy.key = "other"  # type: ignore[misc]
