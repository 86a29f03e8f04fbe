"""Tests for the records: Decimal money, float market data, UTC times, and their checks."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import numpy as np
import pytest

from trader.domain import AccountValue, Action, Bar, Contract, Fill, Position, Tick
from trader.errors import ValidationError

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
ES = Contract("ES", "FUT", exchange="CME", local_symbol="ESZ6")  # type: ignore[arg-type]


def make_fill(**changes: Any) -> Fill:
    fields: dict[str, Any] = {
        "exec_id": "0001f4e8.6584.01.01",
        "client_order_id": "o-1",
        "contract": ES,
        "action": Action.SELL,
        "quantity": Decimal(2),
        "price": Decimal("5000.25"),
        "time": T0,
    }
    fields.update(changes)
    return Fill(**fields)


def test_fill_signs_and_notional() -> None:
    sold = make_fill(commission=Decimal("4.50"))
    assert sold.signed_quantity == Decimal(-2)
    assert sold.notional == Decimal("10000.50")
    assert sold.commission == Decimal("4.50")
    assert make_fill().commission is None  # not reported yet, which is not zero


def test_fill_accepts_a_negative_price_and_an_unknown_client_order() -> None:
    spread = make_fill(price=Decimal("-1.25"), client_order_id=None)
    assert spread.price == Decimal("-1.25")
    assert spread.client_order_id is None


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"exec_id": ""}, "Fill.exec_id must not be empty"),
        ({"quantity": Decimal(0)}, "Fill.quantity must be > 0"),
        ({"quantity": 2.0}, "Fill.quantity must be a Decimal, got float"),
        ({"price": 5000.25}, "Fill.price must be a Decimal, got float"),
        ({"price": Decimal("Infinity")}, "Fill.price must be finite"),
        ({"commission": 1.0}, "Fill.commission must be a Decimal"),
        ({"time": datetime(2026, 3, 2, 14, 30)}, "Fill.time must be timezone-aware"),
        ({"time": "2026-03-02"}, "Fill.time must be a datetime"),
        ({"contract": "ES"}, "Fill.contract must be a Contract"),
        ({"action": "SHORT"}, "Fill.action must be one of BUY, SELL"),
    ],
)
def test_invalid_fills_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_fill(**changes)


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        make_fill().price = Decimal(1)  # type: ignore[misc]


def test_position_allows_short_and_flat_but_not_float_money() -> None:
    short = Position("DU1", ES, Decimal(-3), Decimal("5001.5"), unrealized_pnl=Decimal("-12.5"))
    assert not short.is_flat
    assert Position("DU1", ES, 0, 0).is_flat
    with pytest.raises(
        ValidationError, match=re.escape("Position.avg_cost must be a Decimal, got float")
    ):
        Position("DU1", ES, Decimal(1), 5001.5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=re.escape("Position.market_value must be a Decimal")):
        Position("DU1", ES, Decimal(1), Decimal(1), market_value=1.0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=re.escape("Position.account must not be empty")):
        Position("", ES, Decimal(1), Decimal(1))


def test_tick_converts_numbers_to_float_and_time_to_utc() -> None:
    local = datetime(2026, 3, 2, 9, 30, tzinfo=timezone(timedelta(hours=-5)))
    tick = Tick("ES.FUT.ESZ6", local, bid=5000, ask=np.float32(5000.25), bid_size=np.int64(7))
    assert tick.time == T0 and tick.time.tzinfo is UTC
    assert (type(tick.bid), type(tick.ask), type(tick.bid_size)) == (float, float, float)
    assert tick.mid == 5000.125
    assert tick.spread == 0.25
    assert Tick("X.STK", T0, bid=1.0).mid is None


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("ES", datetime(2026, 3, 2)), {}, "Tick.time must be timezone-aware"),
        (("", T0), {}, "Tick.instrument must not be empty"),
        (("ES", T0), {"bid": "5000"}, "Tick.bid must be a float, got str"),
        (("ES", T0), {"volume": True}, "Tick.volume must be a float, got bool"),
    ],
)
def test_invalid_ticks_are_refused(
    args: tuple[Any, ...], kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message):
        Tick(*args, **kwargs)


def test_bar_checks_its_range_and_types() -> None:
    bar = Bar("ES.FUT.ESZ6", T0, "1 min", 1, 3, 0.5, 2, 10, count=4)
    assert (bar.open, bar.high, bar.low, bar.close) == (1.0, 3.0, 0.5, 2.0)
    with pytest.raises(ValidationError, match=re.escape("high 1.0 < low 2.0")):
        Bar("ES", T0, "1 min", 1.5, 1.0, 2.0, 1.5, 10)
    with pytest.raises(ValidationError, match=re.escape("Bar.close is required")):
        Bar("ES", T0, "1 min", 1.0, 1.0, 1.0, None, 10)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=re.escape("Bar.start must be timezone-aware")):
        Bar("ES", datetime(2026, 1, 1), "1 min", 1.0, 1.0, 1.0, 1.0, 10)
    with pytest.raises(ValidationError, match=re.escape("Bar.size must not be empty")):
        Bar("ES", T0, "", 1.0, 1.0, 1.0, 1.0, 10)


def test_account_value_reads_its_amount_as_decimal() -> None:
    assert AccountValue("DU1", "NetLiquidation", "100250.37", "USD").amount == Decimal("100250.37")
    with pytest.raises(
        ValidationError, match="AccountValue 'AccountType' must be a decimal number"
    ):
        _ = AccountValue("DU1", "AccountType", "INDIVIDUAL").amount
