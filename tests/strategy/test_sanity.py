"""TickGuard: the bounds a tick must be within; a real move of an order of magnitude is taken once confirmed."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from trader.domain import Tick
from trader.strategy.sanity import CONFIRM, TickGuard

NOW = datetime(2026, 12, 7, 15, 0, tzinfo=UTC)


def tick(key: str = "AAPL.STK", **fields: float | None) -> Tick:
    return Tick(key, NOW, **fields)


@pytest.mark.parametrize("fields", [
    {"last": math.nan}, {"last": math.inf}, {"bid": -math.inf}, {"ask": 1e308}, {"last": 5e-324},
    {"last": 0.0}, {"last": -1.0}, {"bid": 1e-9}, {"last": 2e9},
    {"last": 100.0, "volume": 1e308}, {"last": 100.0, "volume": -1.0}, {"last": 100.0, "bid_size": math.nan},
    {"last": 100.0, "last_size": math.inf}, {"last": 100.0, "ask_size": 1e13},
])
def test_absurd_values_are_refused(fields: dict[str, float]) -> None:
    assert TickGuard("AAPL.STK").check(tick(**fields)) is not None


def test_futures_and_combos_may_trade_at_zero_or_below_but_not_absurdly() -> None:
    for key in ("CL.FUT.202005", "ES.CONTFUT", "SPREAD.BAG"):
        guard = TickGuard(key)
        assert guard.check(tick(key, last=-37.63)) is None
        assert guard.check(tick(key, bid=0.0, ask=0.05)) is None
        assert guard.check(tick(key, last=3900.0)) is None  # no jump test where prices cross zero
        for absurd in (-1e308, 5e-324, -5e-324, math.nan, 2e9):
            assert guard.check(tick(key, last=absurd)) is not None, (key, absurd)
    assert TickGuard("AAPL.OPT.20261218.C150").check(tick("AAPL.OPT.20261218.C150", last=-1.0)) is not None


def test_a_jump_is_refused_until_confirmed() -> None:
    guard = TickGuard("AAPL.STK")
    assert guard.check(tick(last=150.0)) is None
    assert guard.check(tick(last=160.0)) is None and guard.reference == 160.0
    assert guard.check(tick(last=16_000.0)) is not None  # a forged or broken print
    assert guard.check(tick(last=161.0)) is None  # back to the real level: the outlier is forgotten
    assert guard.check(tick(bid=1.0, ask=3.0)) is not None  # the midpoint counts when there is no last
    assert guard.check(tick(bid=0.5)) is None  # a lone side is only bounded
    # A real move (a 1:20 reverse split): refused CONFIRM - 1 times, then taken.
    verdicts = [guard.check(tick(last=3220.0 + n)) for n in range(CONFIRM + 1)]
    assert [v is None for v in verdicts] == [False] * (CONFIRM - 1) + [True, True]
    assert guard.reference == 3220.0 + CONFIRM


def test_an_empty_book_side_is_absent_not_absurd() -> None:
    """IB's empty side (-1, size 0) and an option's zero bid leave the tick's other prices usable."""
    import ib_async

    from trader.brokers.ib.parsing import ticker_to_tick

    ticker = ib_async.Ticker(contract=ib_async.Stock("AAPL", "SMART", "USD"), time=NOW)
    # As ib_async's wrapper records an empty bid (its constructor resets prices to NaN).
    ticker.bid, ticker.bidSize, ticker.ask, ticker.askSize, ticker.last, ticker.lastSize = \
        -1.0, 0.0, 150.2, 300.0, 150.1, 100.0
    guard = TickGuard("AAPL.STK")
    assert guard.check(Tick(**ticker_to_tick(ticker, "AAPL.STK"))) is None
    assert guard.reference == 150.1
    assert guard.check(tick(bid=-1.0, ask=-1.0, bid_size=0.0, ask_size=0.0)) is None  # an empty book: no price
    assert guard.check(tick(bid=-1.0, ask=150.3)) is None  # one-sided: no jump test
    option = TickGuard("AAPL.OPT.20261218.C400")
    assert option.check(tick("AAPL.OPT.20261218.C400", bid=0.0, ask=0.05, last=0.03)) is None
    assert guard.check(tick(bid=-2.0, ask=150.3)) is not None  # only -1 and 0 mean "empty"
