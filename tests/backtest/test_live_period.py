"""The live side of a drift check against a real LMDB market store: fills, bars or recorded ticks, clear refusals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trader.backtest.live_period import (
    drift,
    instrument_keys,
    period_bars,
    strategy_fills,
    ticks_to_bars,
)
from trader.data.arctic import ArcticStore
from trader.domain import Action, Contract, Fill, Order, SecType
from trader.errors import NotFound
from trader.strategy.base import Strategy, StrategyConfig
from trader.strategy.sizing import client_order_id

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
AAPL = Contract("AAPL", SecType.STK)


class Holder(Strategy):
    name = "holder"
    instruments = ("AAPL",)
    bar_size = "1m"

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return pd.Series(1.0, index=prices.index)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ArcticStore]:
    yield ArcticStore(f"lmdb://{tmp_path / 'arctic'}")


def minute_bars(n: int) -> pd.DataFrame:
    index = pd.date_range(T0, periods=n, freq="1min", tz="UTC", name="time")
    close = 100 + np.arange(n, dtype=float)
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 10.0},
                        index=index)


def order(coid: str, ref: str) -> Order:
    return Order(coid, AAPL, Action.BUY, Decimal(10), order_ref=ref)


def fill(coid: str, at: datetime) -> Fill:
    return Fill(f"x-{coid}", coid, AAPL, Action.BUY, Decimal(10), Decimal(100), at, commission=Decimal(1))


def test_the_strategys_fills_are_its_orders_and_their_bracket_children() -> None:
    orders = [order("holder.aaaa", "holder"), order("other.bbbb", "other"), order("manual1", "manual")]
    fills = [fill("holder.aaaa", T0), fill("holder.aaaa.sl", T0), fill("other.bbbb", T0), fill("manual1", T0)]
    assert [f.client_order_id for f in strategy_fills("holder", orders, fills)] == ["holder.aaaa", "holder.aaaa.sl"]


def test_instrument_keys_prefer_the_services_then_read_the_symbol() -> None:
    strategy = Holder(StrategyConfig(instruments=["AAPL", "ESZ6"]))
    assert instrument_keys(strategy, [], {"AAPL": "AAPL.STK"}, today=T0.date()) == {
        "AAPL": "AAPL.STK", "ESZ6": "ES.FUT.202612"}


def test_no_fills_is_a_clear_not_found(store: ArcticStore) -> None:
    strategy = Holder()
    with pytest.raises(NotFound, match="no fills of strategy holder .*not traded live or on paper"):
        drift(strategy, [order("other.bbbb", "other")], [fill("other.bbbb", T0)], store)


def test_no_bars_nor_ticks_names_the_key_and_range(store: ArcticStore) -> None:
    strategy = Holder()  # looked for from a week before the first fill: the bar that decided it is in there
    with pytest.raises(NotFound, match=r"no 1m bars or recorded ticks of AAPL.STK from 2026-02-23 14:30 to the last"):
        drift(strategy, [order("holder.aaaa", "holder")], [fill("holder.aaaa", T0)], store)


def test_bars_only_before_the_period_are_no_bars(store: ArcticStore) -> None:
    frame = minute_bars(5)
    store.write_bars("AAPL.STK", "1m", frame, start=T0, end=T0 + timedelta(minutes=5))
    with pytest.raises(NotFound, match="no 1m bars"):
        period_bars(store, "AAPL.STK", "1m", T0 + timedelta(hours=1), None, 10)


def test_stored_bars_with_their_lookback(store: ArcticStore) -> None:
    frame = minute_bars(60)
    store.write_bars("AAPL.STK", "1m", frame, start=T0, end=T0 + timedelta(hours=1))
    bars, source = period_bars(store, "AAPL.STK", "1m", T0 + timedelta(minutes=30), None, 5)
    assert source == "bars"
    assert bars.index[0] == T0 + timedelta(minutes=25) and len(bars) == 35  # 5 bars of warm-up, then the period
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]


def ticks(rows: list[tuple[int, float, float, float, float]]) -> pd.DataFrame:
    index = pd.DatetimeIndex([T0 + timedelta(seconds=s) for s, *_ in rows], name="time")
    return pd.DataFrame({"bid": [r[1] for r in rows], "ask": [r[2] for r in rows], "last": [r[3] for r in rows],
                         "bid_size": np.nan, "ask_size": np.nan, "last_size": [r[4] for r in rows],
                         "volume": np.nan}, index=index)


def test_ticks_to_bars_as_the_live_aggregator_builds_them() -> None:
    nan = float("nan")
    frame = ticks([(1, 99.0, 101.0, nan, nan),  # no trade: the mid, 100, no volume
                   (10, nan, nan, 102.0, 5.0), (20, nan, nan, 98.0, 3.0),
                   (30, 0.0, 0.0, nan, nan),  # no usable price: left out
                   (59, nan, nan, 101.0, 2.0),
                   (125, nan, nan, 103.0, 1.0)])  # the minute after next: the empty minute has no bar
    bars = ticks_to_bars(frame, 60)
    assert list(bars.index) == [pd.Timestamp(T0), pd.Timestamp(T0 + timedelta(minutes=2))]
    assert bars.iloc[0].to_dict() == {"open": 100.0, "high": 102.0, "low": 98.0, "close": 101.0, "volume": 10.0}
    assert bars.iloc[1].to_dict() == {"open": 103.0, "high": 103.0, "low": 103.0, "close": 103.0, "volume": 1.0}


def test_recorded_ticks_stand_in_for_missing_bars(store: ArcticStore) -> None:
    nan = float("nan")
    store.append_ticks("AAPL.STK", ticks([(s, nan, nan, 100.0 + s / 60, 1.0) for s in range(0, 600, 15)]))
    bars, source = period_bars(store, "AAPL.STK", "1m", T0 + timedelta(minutes=2), None, 1)
    assert source == "ticks"
    assert bars.index[0] == T0 + timedelta(minutes=1) and len(bars) == 9
    assert bars["volume"].tolist() == [4.0] * 9


class VolumeGate(Strategy):
    name = "gate"
    instruments = ("AAPL",)
    bar_size = "1m"

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return (prices["volume"] > 500).astype(float)


def gate_bars(store: ArcticStore) -> pd.DataFrame:
    frame = minute_bars(12)
    frame["volume"] = [100.0, 100, 1000, 1000, 1000, 1000, 100, 100, 100, 100, 100, 100]  # long from 2 to 5
    store.write_bars("AAPL.STK", "1m", frame, start=T0, end=T0 + timedelta(minutes=12))
    return frame


def gate_fill(frame: pd.DataFrame, decided: int, action: Action) -> Fill:
    coid = client_order_id("gate", "AAPL.STK", frame.index[decided].value)
    price = Decimal(repr(float(frame["open"].iloc[decided + 1])))  # the next bar's open, as the backtest fills
    return Fill(f"x{decided}", coid, AAPL, action, Decimal(10), price, frame.index[decided + 1].to_pydatetime(),
                commission=Decimal("1.00"))


def test_the_period_starts_at_the_first_live_orders_bar_and_matches_exactly(store: ArcticStore) -> None:
    frame = gate_bars(store)
    fills = [gate_fill(frame, 2, Action.BUY), gate_fill(frame, 6, Action.SELL)]
    orders = [Order(f.client_order_id, AAPL, f.action, f.quantity, order_ref="gate") for f in fills]
    # The config's backtest range and benchmark are a research run's: the drift's period is the live one.
    strategy = VolumeGate(StrategyConfig(sizing={"kind": "quantity", "value": 10},
                                         backtest={"start": "2030-01-01", "benchmark": "SPY"}))
    report = drift(strategy, orders, fills, store)
    assert report.start == T0 + timedelta(minutes=2) and report.end == T0 + timedelta(minutes=11)
    assert list(report.rows["status"]) == ["matched", "matched"] and report.score == 0.0
    assert report.pnl_live == report.pnl_backtest == Decimal(40 - 2)  # 10 shares up 4, two commissions

    later = drift(strategy, orders, fills, store, start=T0 + timedelta(minutes=4))
    assert [(r.bar.minute, r.status) for r in later.rows.itertuples()] == [(34, "missing"), (36, "matched")]
    assert later.notes == [("1 live fill(s) decided outside 2026-03-02 14:34 .. 2026-03-02 14:41 (the bars' range, "
                            "the last bar excluded) not compared")]


def test_a_fill_on_an_instrument_the_strategy_no_longer_trades_is_extra_and_said(store: ArcticStore) -> None:
    frame = gate_bars(store)
    msft = Fill("xm", "gate.msft000001", Contract("MSFT", SecType.STK), Action.BUY, Decimal(5), Decimal(300),
                frame.index[4].to_pydatetime(), commission=Decimal(1))
    fills = [gate_fill(frame, 2, Action.BUY), gate_fill(frame, 6, Action.SELL), msft]
    orders = [Order(f.client_order_id, f.contract, f.action, f.quantity, order_ref="gate") for f in fills]
    report = drift(VolumeGate(StrategyConfig(sizing={"kind": "quantity", "value": 10})), orders, fills, store)
    extra = report.rows[report.rows.status == "extra"].iloc[0]
    assert (extra.instrument, extra.kind, extra.bar) == ("MSFT.STK", "other", frame.index[4])
    assert any("fills on MSFT.STK, not an instrument of the strategy now" in note for note in report.notes)
