"""Tests for the pre-trade risk gate: each limit at and past its edge, the kill switch, the rate."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import pytest

from trader.config import RiskSettings, TradingHours
from trader.domain.enums import Action
from trader.errors import RiskLimitExceeded, ValidationError
from trader.trading.risk import RiskGate
from trader.trading.trading_day import trading_day
from trader.trading.working import Exposure, OrderIntent, Working, notional_price

D = Decimal
# Monday 2 March 2026, 10:00 in New York (EST, before the DST switch on 8 March).
T0 = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


class Clock:
    """A manual clock: the gate reads only this."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def intent(**changes: Any) -> OrderIntent:
    fields: dict[str, Any] = {
        "key": "AAPL.STK",
        "symbol": "AAPL",
        "action": Action.BUY,
        "quantity": D(100),
        "multiplier": D(1),
        "reference_price": D("100.00"),
        "market_price": D("100.00"),
    }
    fields.update(changes)
    return OrderIntent(**fields)


def exposure(**changes: Any) -> Exposure:
    fields: dict[str, Any] = {
        "positions": {},
        "working": {},
        "gross_exposure": D(0),
        "daily_pnl": D(0),
    }
    fields.update(changes)
    return Exposure(**fields)


def gate(clock: Callable[[], datetime] | None = None, **limits: Any) -> RiskGate:
    return RiskGate(RiskSettings(**limits), clock or Clock())


def refused(g: RiskGate, i: OrderIntent, e: Exposure | None = None, batch: int = 1) -> RiskLimitExceeded:
    with pytest.raises(RiskLimitExceeded) as info:
        g.check(i, e or exposure(), batch=batch)
    return info.value


def assert_refused(
    g: RiskGate, i: OrderIntent, limit: str, *texts: str, e: Exposure | None = None, batch: int = 1
) -> RiskLimitExceeded:
    err = refused(g, i, e, batch)
    assert err.details["limit"] == limit
    assert {"limit", "value", "maximum"} <= err.details.keys()
    assert limit in err.message
    for text in texts:
        assert text in err.message, (text, err.message)
    return err


# -- no limits --------------------------------------------------------------


def test_default_settings_let_any_order_through() -> None:
    gate().check(intent(quantity=D(10**9), reference_price=None, market_price=None),
                 exposure(daily_pnl=D(-10**9), gross_exposure=D(10**12)))


# -- order quantity ---------------------------------------------------------


def test_max_order_quantity_accepts_at_and_refuses_past_the_limit() -> None:
    g = gate(max_order_quantity=D(100))
    g.check(intent(quantity=D(100)), exposure())
    err = assert_refused(g, intent(quantity=D("100.5")), "max_order_quantity", "100.5", "100")
    assert (err.details["value"], err.details["maximum"]) == (D("100.5"), D(100))


# -- order notional ---------------------------------------------------------


def test_max_order_notional_uses_the_multiplier() -> None:
    g = gate(max_order_notional=D(100000))
    g.check(intent(quantity=D(1000), reference_price=D(100)), exposure())
    g.check(intent(key="ES.FUT.202612", symbol="ES", quantity=D(1), multiplier=D(50),
                   reference_price=D(2000)), exposure())
    err = assert_refused(g, intent(key="ES.FUT.202612", symbol="ES", quantity=D(1),
                                   multiplier=D(50), reference_price=D("2000.02")),
                         "max_order_notional", "100001.00", "100000")
    assert err.details["value"] == D("100001.00")
    assert err.details["maximum"] == D(100000)


def test_max_order_notional_refuses_an_order_without_a_price() -> None:
    err = assert_refused(gate(max_order_notional=D(100000)), intent(reference_price=None),
                         "max_order_notional", "unknown", "100000")
    assert err.details["value"] is None


def test_an_order_without_a_price_passes_when_no_money_limit_is_set() -> None:
    gate(max_order_quantity=D(1000)).check(intent(reference_price=None), exposure())


# -- price deviation --------------------------------------------------------


def test_max_price_deviation_on_the_limit_price() -> None:
    g = gate(max_price_deviation=D("0.05"))
    g.check(intent(limit_price=D(105)), exposure())
    g.check(intent(limit_price=D(95)), exposure())
    err = assert_refused(g, intent(limit_price=D("105.01")), "max_price_deviation",
                         "105.01", "is 5.01% from the market 100", "over the limit of 5% (0.05)")
    assert err.details["value"] == D("0.0501")
    assert err.details["maximum"] == D("0.05")
    assert_refused(g, intent(action=Action.SELL, limit_price=D("94.99")), "max_price_deviation")


def test_max_price_deviation_on_the_stop_price() -> None:
    g = gate(max_price_deviation=D("0.1"))
    g.check(intent(stop_price=D(90)), exposure())
    assert_refused(g, intent(stop_price=D("89.9")), "max_price_deviation", "stop", "89.9")


def test_without_a_market_price_a_priced_order_is_refused_while_the_deviation_check_is_on() -> None:
    # A limit nothing can be checked against could be anything (a SELL LMT 0.01 on a 100 stock).
    assert_refused(gate(max_price_deviation=D("0.01")), intent(market_price=None, limit_price=D(500)),
                   "max_price_deviation", "no market price", "500")
    gate(max_price_deviation=D("0.01")).check(intent(market_price=None), exposure())  # a market order
    gate().check(intent(market_price=None, limit_price=D(500)), exposure())  # the check off


def test_the_notional_price_is_the_most_the_order_can_trade_at() -> None:
    market, bid = D(100), D("99.9")
    assert notional_price(Action.BUY, D(90), None, market) == D(90)  # a buy limit never pays more
    assert notional_price(Action.BUY, D(90), D(95), market) == D(90)  # stop limit: the limit bounds it
    assert notional_price(Action.BUY, None, D(105), market) == D(105)  # a buy stop trades at or past it
    assert notional_price(Action.SELL, D("90.01"), None, market, bid) == market  # marketable: the market
    assert notional_price(Action.SELL, D(110), None, market) == D(110)
    assert notional_price(Action.SELL, None, None, None, bid) == bid
    assert notional_price(Action.BUY, None, None, None) is None


# -- position ---------------------------------------------------------------


def test_max_position_counts_the_held_position() -> None:
    g = gate(max_position=D(500))
    g.check(intent(quantity=D(100)), exposure(positions={"AAPL.STK": D(400)}))
    err = assert_refused(g, intent(quantity=D(101)), "max_position", "501", "500",
                         e=exposure(positions={"AAPL.STK": D(400)}))
    assert (err.details["value"], err.details["maximum"]) == (D(501), D(500))


def test_max_position_applies_to_shorts() -> None:
    g = gate(max_position=D(500))
    short = exposure(positions={"AAPL.STK": D(-400)})
    g.check(intent(action=Action.SELL, quantity=D(100)), short)
    assert_refused(g, intent(action=Action.SELL, quantity=D(101)), "max_position", "-501",
                   e=short)


def test_max_position_is_per_key() -> None:
    g = gate(max_position=D(500))
    g.check(intent(quantity=D(500)), exposure(positions={"MSFT.STK": D(500)}))


def test_working_orders_count_in_the_orders_direction_only() -> None:
    g = gate(max_position=D(500))
    # A working buy of 300 may fill: 100 + 300 + 101 > 500.
    buys = exposure(positions={"AAPL.STK": D(100)}, working={"AAPL.STK": Working(buy=D(300))})
    g.check(intent(quantity=D(100)), buys)
    assert_refused(g, intent(quantity=D(101)), "max_position", "501", e=buys)
    # A working sell may be cancelled: it makes no room for a buy.
    sells = exposure(positions={"AAPL.STK": D(400)}, working={"AAPL.STK": Working(sell=D(300))})
    assert_refused(g, intent(quantity=D(101)), "max_position", "501", e=sells)
    # ...and a working buy does not count against a sell.
    g.check(intent(action=Action.SELL, quantity=D(500)), exposure(working={"AAPL.STK": Working(buy=D(400))}))


def test_an_order_that_reduces_the_position_passes_even_over_the_limit() -> None:
    g = gate(max_position=D(100))
    over = exposure(positions={"AAPL.STK": D(300)})
    g.check(intent(action=Action.SELL, quantity=D(300)), over)
    g.check(intent(action=Action.SELL, quantity=D(50)), over)
    assert_refused(g, intent(quantity=D(1)), "max_position", e=over)


def test_an_order_that_crosses_zero_is_not_reducing() -> None:
    g = gate(max_position=D(100))
    over = exposure(positions={"AAPL.STK": D(300)})
    # 300 -> -101: it opens a short past the limit.
    assert_refused(g, intent(action=Action.SELL, quantity=D(401)), "max_position", "-101",
                   e=over)
    g.check(intent(action=Action.SELL, quantity=D(400)), exposure(positions={"AAPL.STK": D(300)},
                                                                   working={"AAPL.STK": Working(buy=D(100))}))


def test_a_sell_behind_working_sells_is_not_reducing() -> None:
    # Held 100 with a working sell of 100: another sell of 100 could leave -100.
    g = gate(max_position=D(50))
    e = exposure(positions={"AAPL.STK": D(100)}, working={"AAPL.STK": Working(sell=D(100))})
    assert_refused(g, intent(action=Action.SELL, quantity=D(100)), "max_position", "-100", e=e)


def test_working_buys_and_sells_count_apart() -> None:
    # Held 100, a working buy 100 and a working sell 100 (net 0): another sell of 100 could leave -100,
    # so it does not reduce, and the daily-loss limit stops it.
    g = gate(max_position=D(150), max_daily_loss=D(1000))
    e = exposure(positions={"AAPL.STK": D(100)}, working={"AAPL.STK": Working(buy=D(100), sell=D(100))},
                 daily_pnl=D(-5000))
    assert_refused(g, intent(action=Action.SELL, quantity=D(100)), "max_daily_loss", "5000", e=e)
    # A buy counts the working buy: 100 + 100 + 51 > 150.
    assert_refused(gate(max_position=D(150)), intent(quantity=D(51)), "max_position", "251", e=e)


def test_reduces_only_orders_skip_the_position_limit() -> None:
    # The stop-loss child of a bracket whose parent has not filled yet.
    g = gate(max_position=D(50))
    e = exposure(working={"AAPL.STK": Working(buy=D(100))})
    assert_refused(g, intent(action=Action.SELL, quantity=D(100)), "max_position", e=e)
    g.check(intent(action=Action.SELL, quantity=D(100), reduces_only=True), e)


# -- gross exposure ---------------------------------------------------------


def test_max_gross_exposure_counts_working_orders_on_the_side_that_grows_most() -> None:
    g = gate(max_gross_exposure=D(100000))
    order = intent(quantity=D(400), reference_price=D(100))  # 40000
    g.check(order, exposure(working={"AAPL.STK": Working(buy=D(500), buy_notional=D(50000))}))
    err = assert_refused(g, order, "max_gross_exposure", "110000", "40000",
                         e=exposure(working={"AAPL.STK": Working(buy=D(700), buy_notional=D(70000))}))
    assert err.details["value"] == D(110000)
    # Other instruments' working orders count too...
    assert_refused(g, order, "max_gross_exposure", e=exposure(
        working={"MSFT.STK": Working(sell=D(200), sell_notional=D(61000))}))
    # ...but the other side of the same instrument's does not add to a buy: whatever fills,
    # the position ends between held - sells and held + buys.
    g.check(order, exposure(working={"AAPL.STK": Working(sell=D(600), sell_notional=D(60000))}))


def test_max_gross_exposure_adds_the_order_notional() -> None:
    g = gate(max_gross_exposure=D(1000000))
    e = exposure(gross_exposure=D(990000))
    g.check(intent(quantity=D(100), reference_price=D(100)), e)
    err = assert_refused(g, intent(quantity=D(100), reference_price=D("100.01")),
                         "max_gross_exposure", "1000001.00", "1000000", e=e)
    assert (err.details["value"], err.details["maximum"]) == (D("1000001.00"), D(1000000))


def test_max_gross_exposure_lets_a_reducing_order_through() -> None:
    g = gate(max_gross_exposure=D(1000))
    e = exposure(positions={"AAPL.STK": D(100)}, gross_exposure=D(10000))
    g.check(intent(action=Action.SELL, quantity=D(100)), e)
    assert_refused(g, intent(action=Action.BUY, quantity=D(1)), "max_gross_exposure", e=e)


def test_max_gross_exposure_refuses_an_order_without_a_price() -> None:
    assert_refused(gate(max_gross_exposure=D(1000)), intent(reference_price=None),
                   "max_gross_exposure", "unknown", "1000")


# -- daily loss -------------------------------------------------------------


def test_max_daily_loss_refuses_new_risk_at_the_limit() -> None:
    g = gate(max_daily_loss=D(5000))
    g.check(intent(), exposure(daily_pnl=D("-4999.99")))
    err = assert_refused(g, intent(), "max_daily_loss", "5000.00", "5000",
                         e=exposure(daily_pnl=D("-5000.00")))
    assert (err.details["value"], err.details["maximum"]) == (D("5000.00"), D(5000))


def test_max_daily_loss_still_lets_risk_be_reduced() -> None:
    g = gate(max_daily_loss=D(5000))
    e = exposure(positions={"AAPL.STK": D(-100)}, daily_pnl=D(-8000))
    g.check(intent(action=Action.BUY, quantity=D(100)), e)
    g.check(intent(action=Action.SELL, quantity=D(100), reduces_only=True), e)
    assert_refused(g, intent(action=Action.SELL, quantity=D(1)), "max_daily_loss", e=e)
    assert_refused(g, intent(action=Action.BUY, quantity=D(101)), "max_daily_loss", e=e)


def test_a_profit_never_trips_the_daily_loss() -> None:
    gate(max_daily_loss=D(1)).check(intent(), exposure(daily_pnl=D(10**6)))


# -- order rate -------------------------------------------------------------


def test_max_orders_per_minute_slides_with_the_clock() -> None:
    clock = Clock()
    g = gate(clock, max_orders_per_minute=3)
    for _ in range(3):
        g.check(intent(), exposure())
        g.record_order()
        clock.advance(10)
    # Orders at 0, 10, 20 s; now 30 s: the window holds 3.
    err = assert_refused(g, intent(), "max_orders_per_minute", "3")
    assert (err.details["value"], err.details["maximum"]) == (4, 3)  # what the count would be, past the maximum
    clock.advance(29.999)  # 59.999 s after the first
    assert_refused(g, intent(), "max_orders_per_minute")
    clock.advance(0.001)  # exactly 60 s: the first has left the window
    g.check(intent(), exposure())
    assert g.orders_last_minute() == 2
    clock.advance(30)
    assert g.orders_last_minute() == 0


def test_checking_alone_does_not_count_as_an_order() -> None:
    g = gate(max_orders_per_minute=1)
    for _ in range(5):
        g.check(intent(), exposure())
    g.record_order()
    assert_refused(g, intent(), "max_orders_per_minute", "1")


def test_a_bracket_counts_every_order_it_sends_toward_the_rate() -> None:
    g = gate(max_orders_per_minute=3)
    g.record_order()
    g.check(intent(), exposure(), batch=2)  # 1 sent + 2 = 3: at the limit, not past it
    err = assert_refused(g, intent(), "max_orders_per_minute", "1 orders in the last 60 s and 3 in this request",
                         e=exposure(), batch=3)
    assert err.details["value"] == 4


# -- allowed and blocked ----------------------------------------------------


@pytest.mark.parametrize("entry", ["AAPL", "aapl", "AAPL.STK", "aapl.stk"])
def test_blocked_matches_the_symbol_or_the_key(entry: str) -> None:
    g = gate(blocked=[entry])
    err = assert_refused(g, intent(), "blocked", "AAPL.STK")
    assert err.details["value"] == "AAPL.STK"
    g.check(intent(key="MSFT.STK", symbol="MSFT"), exposure())


@pytest.mark.parametrize("entry", ["ES", "es.fut.202612"])
def test_allowed_matches_the_symbol_or_the_key(entry: str) -> None:
    g = gate(allowed=[entry])
    g.check(intent(key="ES.FUT.202612", symbol="ES", multiplier=D(50)), exposure())
    assert_refused(g, intent(), "allowed", "AAPL.STK")


def test_allowed_by_key_leaves_other_expiries_out() -> None:
    g = gate(allowed=["ES.FUT.202612"])
    assert_refused(g, intent(key="ES.FUT.202703", symbol="ES"), "allowed", "ES.FUT.202703")


def test_blocked_wins_over_allowed() -> None:
    assert_refused(gate(allowed=["AAPL"], blocked=["AAPL.STK"]), intent(), "blocked")


# -- trading hours ----------------------------------------------------------

NY_HOURS = TradingHours(start=time(9, 30), end=time(16, 0), timezone="America/New_York")
# Globex-style overnight session, Sunday to Thursday evenings.
OVERNIGHT = TradingHours(start=time(18, 0), end=time(5, 0), timezone="America/New_York",
                         weekdays=[6, 0, 1, 2, 3])


def at(when: datetime, hours: TradingHours) -> RiskGate:
    return gate(Clock(when), trading_hours=hours)


@pytest.mark.parametrize("when", [
    datetime(2026, 3, 2, 14, 30, tzinfo=UTC),   # Mon 09:30 New York: the window opens
    datetime(2026, 3, 2, 20, 59, tzinfo=UTC),   # Mon 15:59
    datetime(2026, 7, 6, 13, 30, tzinfo=UTC),   # Mon 09:30 EDT: the zone follows DST
])
def test_trading_hours_inside(when: datetime) -> None:
    at(when, NY_HOURS).check(intent(), exposure())


@pytest.mark.parametrize(("when", "local"), [
    (datetime(2026, 3, 2, 14, 29, tzinfo=UTC), "09:29"),  # Mon before the open
    (datetime(2026, 3, 2, 21, 0, tzinfo=UTC), "16:00"),   # Mon at the close: end is exclusive
    (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), "10:00"),   # Saturday
    (datetime(2026, 3, 8, 15, 0, tzinfo=UTC), "11:00"),   # Sunday (EDT from 02:00)
])
def test_trading_hours_outside(when: datetime, local: str) -> None:
    err = assert_refused(at(when, NY_HOURS), intent(), "trading_hours", local,
                         "America/New_York", "09:30-16:00")
    assert err.details["maximum"] == "09:30-16:00"


@pytest.mark.parametrize(("when", "inside"), [
    (datetime(2026, 3, 1, 23, 0, tzinfo=UTC), True),    # Sun 18:00: the week opens
    (datetime(2026, 3, 1, 22, 59, tzinfo=UTC), False),  # Sun 17:59
    (datetime(2026, 3, 3, 4, 0, tzinfo=UTC), True),     # Mon 23:00
    (datetime(2026, 3, 3, 7, 0, tzinfo=UTC), True),     # Tue 02:00: Monday's session
    (datetime(2026, 3, 3, 10, 0, tzinfo=UTC), False),   # Tue 05:00: closed
    (datetime(2026, 3, 6, 9, 59, tzinfo=UTC), True),    # Fri 04:59: Thursday's session
    (datetime(2026, 3, 6, 23, 0, tzinfo=UTC), False),   # Fri 18:00: no Friday session
    (datetime(2026, 3, 7, 7, 0, tzinfo=UTC), False),    # Sat 02:00: Friday's, not listed
])
def test_trading_hours_spanning_midnight(when: datetime, inside: bool) -> None:
    g = at(when, OVERNIGHT)
    if inside:
        g.check(intent(), exposure())
    else:
        assert_refused(g, intent(), "trading_hours", "18:00-05:00")


def test_a_naive_clock_is_refused() -> None:
    g = gate(Clock(datetime(2026, 3, 2, 15, 0)), trading_hours=NY_HOURS)
    with pytest.raises(ValidationError, match="timezone-aware"):
        g.check(intent(), exposure())


# -- kill switch ------------------------------------------------------------


def test_kill_switch_refuses_everything_until_released() -> None:
    clock = Clock()
    g = gate(clock)
    g.check(intent(), exposure())
    g.engage_kill_switch("runaway strategy")
    assert g.kill_switch_engaged
    assert (g.kill_switch_reason, g.status()["kill_switch"]["since"]) == ("runaway strategy", T0)
    err = assert_refused(g, intent(), "kill_switch", "runaway strategy", "2026-03-02 15:00:00")
    assert err.details["reason"] == "runaway strategy"
    assert err.details["since"] == T0
    # Reduce-only orders too: nothing new goes out.
    assert_refused(g, intent(action=Action.SELL, reduces_only=True), "kill_switch",
                   e=exposure(positions={"AAPL.STK": D(100)}))
    clock.advance(5)
    assert g.engage_kill_switch() is None  # engaged again without a reason: the first one is kept
    assert (g.kill_switch_reason, g.status()["kill_switch"]["since"]) == ("runaway strategy", T0)
    assert g.engage_kill_switch("runaway strategy") is None  # the same reason replaces nothing
    assert g.engage_kill_switch("still running") == "runaway strategy"  # a new reason replaces it, and says which
    assert (g.kill_switch_reason, g.status()["kill_switch"]["since"]) == ("still running", T0)
    g.release_kill_switch()
    assert g.engage_kill_switch() is None and g.kill_switch_reason == "manual"  # none given at all
    g.release_kill_switch()
    assert not g.kill_switch_engaged
    assert (g.kill_switch_reason, g.status()["kill_switch"]["since"]) == (None, None)
    g.check(intent(), exposure())


def test_kill_switch_comes_before_every_other_check() -> None:
    g = gate(blocked=["AAPL"], max_order_quantity=D(1))
    g.engage_kill_switch("halt")
    assert_refused(g, intent(), "kill_switch")


def test_kill_switch_needs_a_reason() -> None:
    with pytest.raises(ValidationError):
        gate().engage_kill_switch("  ")


# -- check order, settings, status ------------------------------------------


def test_the_first_broken_limit_is_reported() -> None:
    g = gate(max_order_quantity=D(10), max_order_notional=D(10), max_position=D(10))
    assert_refused(g, intent(quantity=D(11)), "max_order_quantity")
    assert_refused(g, intent(quantity=D(10)), "max_order_notional")


def test_update_swaps_the_limits_and_keeps_the_state() -> None:
    g = gate(max_order_quantity=D(10))
    g.engage_kill_switch("test")
    g.record_order()
    g.update(RiskSettings(max_order_quantity=D(1000)))
    assert g.settings.max_order_quantity == D(1000)
    assert g.kill_switch_engaged
    assert g.orders_last_minute() == 1
    g.release_kill_switch()
    g.check(intent(quantity=D(1000)), exposure())
    with pytest.raises(ValidationError):
        g.update({"max_order_quantity": 5})  # type: ignore[arg-type]


def test_status_reports_limits_kill_switch_and_rate() -> None:
    clock = Clock()
    g = gate(clock, max_order_notional=D(100000), trading_hours=NY_HOURS)
    g.record_order()
    clock.advance(61)
    g.record_order()
    g.engage_kill_switch("manual")
    status = g.status()
    assert status["limits"]["max_order_notional"] == "100000"
    assert status["limits"]["trading_hours"]["start"] == "09:30:00"
    assert status["kill_switch"] == {"engaged": True, "reason": "manual",
                                     "since": T0 + timedelta(seconds=61)}
    assert status["orders_last_minute"] == 1


# -- intent validation ------------------------------------------------------


@pytest.mark.parametrize("changes", [
    {"quantity": D(0)},
    {"quantity": D(-1)},
    {"quantity": 1.5},
    {"multiplier": D(0)},
    {"market_price": D(0)},
    {"reference_price": 100.0},
    {"action": "HOLD"},
    {"key": ""},
])
def test_order_intent_refuses_bad_fields(changes: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        intent(**changes)


def test_order_intent_accepts_an_action_string_and_signs_the_quantity() -> None:
    sell = intent(action="SELL", quantity=D(3), reference_price=D("-2.5"), multiplier=D(10))
    assert sell.action is Action.SELL
    assert sell.signed_quantity == D(-3)
    assert sell.notional == D("75.0")


@pytest.mark.parametrize(("utc", "day"), [
    ("2026-11-20T14:29:00", "2026-11-19"),  # 09:29 in New York: still the day before
    ("2026-11-20T14:30:00", "2026-11-20"),  # 09:30: the day begins
    ("2026-11-21T04:00:00", "2026-11-20"),  # 23:00 the same evening
])
def test_trading_days_begin_at_the_session_start(utc: str, day: str) -> None:
    now = datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert trading_day(TradingHours(), now).isoformat() == day


def test_a_session_across_midnight_belongs_to_the_day_it_started() -> None:
    hours = TradingHours(start=time(18, 0), end=time(17, 0), timezone="America/Chicago")
    sunday_evening = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)  # Sunday 18:30 in Chicago
    monday_noon = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)  # Monday 12:00
    assert trading_day(hours, sunday_evening) == trading_day(hours, monday_noon) == date(2026, 11, 22)
