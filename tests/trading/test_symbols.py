"""What traders type, read into the broker queries to try: no I/O (the answers are in test_resolve_on_sim)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from trader.brokers.records import ContractQuery
from trader.domain import SecType
from trader.domain.contract_key import futures_month
from trader.errors import ValidationError
from trader.trading.symbols import Hints, read_symbol

DEC_2026 = date(2026, 12, 7)


def first(symbol: str, today: date = DEC_2026, **hints: object) -> ContractQuery:
    return read_symbol(symbol, Hints(**hints), today).queries[0]  # type: ignore[arg-type]


@pytest.mark.parametrize(("month", "digits", "today", "expected"), [
    (12, "6", date(2026, 12, 7), "202612"),   # the current month counts
    (12, "6", date(2026, 12, 31), "202612"),
    (3, "6", date(2026, 12, 7), "203603"),    # March 2026 is past: the next year ending in 6
    (1, "7", date(2026, 12, 7), "202701"),
    (1, "0", date(2026, 12, 7), "203001"),
    (12, "26", date(2027, 6, 1), "202612"),   # two digits say the year
])
def test_a_one_digit_year_is_the_next_such_year(month: int, digits: str, today: date, expected: str) -> None:
    assert futures_month(month, digits, today) == expected


@pytest.mark.parametrize("typed", ["ESZ6", "esz6", "ESZ26", "ES Dec26", "ES DEC26", "es dec 2026", "ES Dec '26"])
def test_futures_codes_and_month_names_ask_for_the_contract_month(typed: str) -> None:
    query = first(typed)
    assert (query.symbol, query.sec_type, query.expiry) == ("ES", SecType.FUT, "202612")


def test_a_futures_code_falls_back_to_the_local_symbol() -> None:
    reading = read_symbol("CLF7", Hints(), DEC_2026)
    assert reading.form == "futures code"
    assert [(q.symbol, q.expiry, q.local_symbol) for q in reading.queries] == [("CL", "202701", ""),
                                                                                ("", "", "CLF7")]


@pytest.mark.parametrize("typed", ["EUR.USD", "EUR/USD", "eur/usd"])
def test_a_separated_pair_is_a_pair(typed: str) -> None:
    assert read_symbol(typed, Hints(), DEC_2026).queries == (
        ContractQuery("EUR", SecType.CASH, exchange="IDEALPRO", currency="USD"),)


def test_six_letters_are_a_pair_only_when_both_halves_are_currencies_and_no_stock_has_that_symbol() -> None:
    stock_then_pair = read_symbol("EURUSD", Hints(), DEC_2026).queries
    assert [(q.symbol, q.sec_type, q.currency) for q in stock_then_pair] == [
        ("EURUSD", SecType.STK, "USD"), ("EUR", SecType.CASH, "USD")]
    assert [q.sec_type for q in read_symbol("EURUSD", Hints(sec_type="CASH"), DEC_2026).queries] == [SecType.CASH]
    assert {q.sec_type for q in read_symbol("ABCDEF", Hints(), DEC_2026).queries} == {
        SecType.STK, SecType.FUT, SecType.IND}  # not currencies: a symbol
    assert {q.sec_type for q in read_symbol("EUREUR", Hints(), DEC_2026).queries} == {
        SecType.STK, SecType.FUT, SecType.IND}


def test_a_plain_symbol_is_the_stock_else_the_future_else_the_index() -> None:
    reading = read_symbol("SPX", Hints(), DEC_2026)
    assert [(q.sec_type, q.exchange) for q in reading.queries] == [
        (SecType.STK, "SMART"), (SecType.FUT, ""), (SecType.IND, "")]
    assert [q.sec_type for q in read_symbol("ES", Hints(sec_type="FUT"), DEC_2026).queries] == [SecType.FUT]


def test_a_strike_or_a_right_makes_the_option() -> None:
    query = first("aapl", strike=Decimal(230), right="CALL", expiry="2026-12-18")
    assert query == ContractQuery("AAPL", SecType.OPT, exchange="SMART", expiry="20261218", right="C",
                                  strike=Decimal(230))
    assert first("AAPL", right="p").right == "P"


def test_a_key_names_its_contract_whatever_the_hints() -> None:
    assert first("CL.FUT.202701") == ContractQuery("CL", SecType.FUT, expiry="202701")
    assert first("es.fut.esz6").local_symbol == "ESZ6"
    assert first("AAPL.OPT.20261218.C150_5") == ContractQuery("AAPL", SecType.OPT, exchange="SMART",
                                                              expiry="20261218", right="C", strike=Decimal("150.5"))
    assert first("brk_b.stk") == ContractQuery("BRK B", exchange="SMART")
    assert first("MY-5FSYM.STK") == ContractQuery("MY_SYM", exchange="SMART")


@pytest.mark.parametrize("typed", ["BRK.B", "BRK B", "BRK/B", "brk.b", "BRK  B"])
def test_a_share_class_is_ibs_symbol_with_a_space(typed: str) -> None:
    reading = read_symbol(typed, Hints(), DEC_2026)
    assert reading.form == "share class" and reading.queries == (ContractQuery("BRK B", exchange="SMART"),)
    assert first("USD.CASH.JPY") == ContractQuery("USD", SecType.CASH, exchange="IDEALPRO", currency="JPY")


@pytest.mark.parametrize(("typed", "hints", "message"), [
    ("  ", {}, "symbol is empty"),
    ("AAPL", {"sec_type": "BOND"}, "unknown sec_type"),
    ("AAPL", {"right": "X"}, "unknown right"),
    ("AAPL.OPT.20261218.Q150", {}, "option key"),
])
def test_what_cannot_be_read_is_refused(typed: str, hints: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        read_symbol(typed, Hints(**hints), DEC_2026)  # type: ignore[arg-type]
