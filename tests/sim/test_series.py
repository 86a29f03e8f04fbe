"""Rolling futures and options series: the catalogue lists the next contracts on any day, as exchanges do."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from pydantic import ValidationError

from trader.domain import SecType
from trader.domain.contract_key import MONTH_CODES
from trader.sim.catalogue import Catalogue, SimConfig, load_sim_config
from trader.sim.series import contract_conid, last_trade_day

DAYS = [date(2026, 12, 7) + timedelta(days=n) for n in range(0, 4 * 365, 17)]  # four years, every 17th day


def test_the_repository_catalogue_has_no_fixed_expiry() -> None:
    config = load_sim_config()
    assert all(i.expiry is None and i.sec_type not in (SecType.FUT, SecType.OPT) for i in config.instruments)
    assert {"ES", "NQ", "CL", "GC"} <= {s.symbol for s in config.futures}  # and the roots issue 17 added


@pytest.mark.parametrize("day", DAYS, ids=str)
def test_every_series_lists_contracts_ahead_on_any_day(day: date) -> None:
    catalogue = Catalogue.from_config(load_sim_config(), day)
    for symbol, listed in (("ES", 3), ("NQ", 2), ("CL", 3), ("GC", 3)):
        found = sorted((i for i in catalogue if i.contract.symbol == symbol and i.contract.sec_type is SecType.FUT),
                       key=lambda i: i.contract.expiry or day)
        assert len(found) == listed and all(i.contract.expiry and i.contract.expiry >= day for i in found)
        front = catalogue.front(symbol, today=day)
        assert front is found[0]
        for inst in found:
            month = inst.contract.contract_month
            assert inst.contract.local_symbol == f"{symbol}{MONTH_CODES[int(month[4:]) - 1]}{month[3]}"
            assert inst.conid == contract_conid(symbol, "FUT", month)  # the same contract, the same conid
    calls = [i for i in catalogue if i.contract.symbol == "AAPL" and i.contract.sec_type is SecType.OPT]
    assert len({i.contract.expiry for i in calls}) == 2
    assert all(i.contract.expiry and i.contract.expiry >= day and i.contract.expiry.weekday() == 4 for i in calls)


def test_the_front_month_rolls_after_its_last_trade_day() -> None:
    config = load_sim_config()
    on_last_day = Catalogue.from_config(config, date(2026, 12, 18)).front("ES", today=date(2026, 12, 18))
    after = Catalogue.from_config(config, date(2026, 12, 19))
    assert on_last_day.contract.local_symbol == "ESZ6"
    assert after.front("ES", today=date(2026, 12, 19)).contract.local_symbol == "ESH7"
    assert after.get(on_last_day.conid) is None  # expired contracts are no longer listed
    # a conid does not depend on the day the catalogue was built
    esh7 = after.front("ES", today=date(2026, 12, 19))
    assert Catalogue.from_config(config, date(2026, 12, 7)).get(esh7.conid) is not None


def test_the_exchanges_last_trade_rules() -> None:
    assert last_trade_day("third_friday", "202612") == date(2026, 12, 18)
    assert last_trade_day("third_friday", "202703") == date(2027, 3, 19)
    assert last_trade_day("third_friday", "202709") == date(2027, 9, 17)
    # NYMEX CL: 3 business days before the 25th of the month before (4 when the 25th is a weekend day)
    assert last_trade_day("nymex_crude", "202701") == date(2026, 12, 22)  # the 25th is a Friday
    assert last_trade_day("nymex_crude", "202705") == date(2027, 4, 20)  # 25 April 2027 is a Sunday
    # COMEX GC: the third last business day of the contract month
    assert last_trade_day("third_last_business_day", "202612") == date(2026, 12, 29)
    assert last_trade_day("third_last_business_day", "202702") == date(2027, 2, 24)


@pytest.mark.parametrize(("clock", "zone"), [("8:30", "US/Central"), ("0830", "US/Central"), ("08:30", "Mars/Olympus")])
def test_a_series_with_a_bad_last_trade_time_is_refused_at_load(clock: str, zone: str) -> None:
    config = load_sim_config().model_dump()
    config["futures"][0].update(last_trade_time=clock, time_zone=zone)
    with pytest.raises(ValidationError, match="last_trade_time|time_zone"):
        SimConfig.model_validate(config)
