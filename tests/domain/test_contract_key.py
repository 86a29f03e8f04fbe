"""The contract key grammar read both ways: contract -> key -> parts -> the same key, and every catalogue key
names exactly its contract."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trader.domain import Contract, Right, SecType
from trader.domain.contract_key import contract_month_of, is_key, make_key, parse_key
from trader.errors import ValidationError
from trader.sim.catalogue import Catalogue, ContractQuery, load_sim_config

SYMBOLS = st.from_regex(r"[A-Z][A-Z0-9_&/-]{0,5}([ _.][A-Z_-])?", fullmatch=True)  # spaces, _ - . & / too
CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "GBP"])
MONTHS = st.builds(lambda y, m: f"{y:04d}{m:02d}", st.integers(2000, 2099), st.integers(1, 12))
STRIKES = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(5000), places=2)


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    kind = draw(st.sampled_from(list(SecType)))
    symbol, currency = draw(SYMBOLS), draw(CURRENCIES)
    if kind is SecType.FUT:
        return Contract(symbol, kind, currency=currency, contract_month=draw(MONTHS))
    if kind is SecType.OPT:
        return Contract(symbol, kind, currency=currency, expiry=draw(st.dates(date(2000, 1, 1), date(2099, 12, 31))),
                        strike=draw(STRIKES), right=draw(st.sampled_from(list(Right))))
    return Contract(symbol, kind, currency=currency)


@given(contracts())
def test_a_key_reads_back_into_the_fields_that_make_it(contract: Contract) -> None:
    parts = parse_key(contract.key)
    assert (parts.symbol, parts.sec_type, parts.currency) == (contract.symbol, contract.sec_type, contract.currency)
    expiry = date(int(parts.expiry[:4]), int(parts.expiry[4:6]), int(parts.expiry[6:])) if parts.expiry else None
    assert (parts.contract_month, expiry, parts.right, parts.strike) == (
        contract.contract_month, contract.expiry, contract.right, contract.strike)
    again = make_key(parts.symbol, parts.sec_type, parts.currency, contract_month=parts.contract_month,
                     expiry=expiry, right=parts.right, strike=parts.strike)
    assert again == contract.key and is_key(contract.key)


def test_spaces_and_underscores_round_trip_and_keys_are_upper_case() -> None:
    assert make_key("MY_SYM", SecType.STK, "USD") == "MY-5FSYM.STK" and parse_key("MY-5FSYM.STK").symbol == "MY_SYM"
    assert make_key("BRK B", SecType.STK, "USD") == "BRK_B.STK" and parse_key("brk_b.stk").symbol == "BRK B"
    assert parse_key("A-5F_B-2D-2EC.STK").symbol == "A_ B-.C" and parse_key("a-5fb.stk").symbol == "A_B"
    # make_key and parse_key agree on case: a lower-case symbol keys as IB's upper-case one
    assert make_key("aapl", SecType.STK, "usd") == "AAPL.STK" == Contract("aapl", SecType.STK).key.upper()
    assert Contract("eur", SecType.CASH, currency="usd").key == "EUR.CASH.USD"
    assert make_key("fgbl", SecType.FUT, "EUR", local_symbol="fgbl dec 26") == "FGBL.FUT.FGBL_DEC_26.EUR"
    assert parse_key("FGBL.FUT.FGBL_DEC_26.EUR").local_symbol == "FGBL DEC 26"


def test_every_catalogue_key_names_exactly_its_contract() -> None:
    catalogue = Catalogue.from_config(load_sim_config())
    for inst in catalogue:
        parts = parse_key(inst.contract.key)
        query = ContractQuery(symbol=parts.symbol, sec_type=str(parts.sec_type), currency=parts.currency,
                              expiry=parts.contract_month or parts.expiry, local_symbol=parts.local_symbol,
                              right=str(parts.right or ""), strike=parts.strike)
        assert [found.conid for found in catalogue.match(query)] == [inst.conid], inst.contract.key


def test_the_catalogue_keys_futures_by_contract_month_as_nymex_does() -> None:
    catalogue = Catalogue.from_config(load_sim_config(), date(2026, 12, 7))  # the series listed on a fixed day
    by_local = {i.contract.local_symbol: i.contract for i in catalogue if i.contract.sec_type is SecType.FUT}
    clf7 = by_local["CLF7"]
    assert (clf7.key, clf7.contract_month, clf7.expiry) == ("CL.FUT.202701", "202701", date(2026, 12, 22))
    assert by_local["ESZ6"].key == "ES.FUT.202612"
    indices = {i.contract.key: i.contract.exchange for i in catalogue if i.contract.sec_type is SecType.IND}
    assert indices == {"SPX.IND": "CBOE", "NDX.IND": "NASDAQ", "VIX.IND": "CBOE"}


@pytest.mark.parametrize(("local", "near", "month"), [
    ("CLF7", date(2026, 12, 17), "202701"),
    ("ESZ6", date(2026, 12, 18), "202612"),
    ("ESZ26", date(2026, 12, 18), "202612"),
    ("GCZ9", date(2029, 12, 27), "202912"),
    ("CLF0", date(2029, 12, 19), "203001"),  # the decade turns with the month delivered
    ("FGBL DEC 26", date(2026, 12, 8), ""),  # not a month code: the expiry's month is used instead
])
def test_a_local_symbol_names_its_contract_month(local: str, near: date, month: str) -> None:
    assert contract_month_of(local, near) == month


@pytest.mark.parametrize(("key", "message"), [
    ("AAPL", "not a contract key"),
    ("EUR.CASH", "BASE.CASH.QUOTE"),
    ("AAPL.STK.EUR.X", "SYMBOL.STK"),
    ("AAPL.STK.EURO", "not a currency"),
    ("ES.FUT", "FUT keys are SYMBOL.FUT.<YYYYMM contract month"),
    ("AAPL.OPT.20261218", "OPT keys are SYMBOL.OPT.YYYYMMDD"),
    ("AAPL.OPT.20261218.X150", "option key"),
    ("AAPL.OPT.2026121.C150", "option key"),
    ("AAPL.OPT.20261218.Cabc", "option key"),
    ("AAPL.OPT.20261218.Cinf", "option key"),
])
def test_a_malformed_key_is_refused_with_its_grammar(key: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_key(key)


def test_a_contract_month_is_a_month_and_only_a_future_has_one() -> None:
    with pytest.raises(ValidationError, match="YYYYMM"):
        Contract("CL", SecType.FUT, contract_month="202713")
    with pytest.raises(ValidationError, match="only to FUT"):
        Contract("AAPL", contract_month="202701")
