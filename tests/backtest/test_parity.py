"""Parity, proven: every example strategy trades live what its backtest trades on the same stored bars.

For each example in strategies/, deterministic one-minute bars are written to
a market store; tws-sim replays them (each bar as four prints: open, nearer
extreme, other extreme, close) at 60x with its start aligned on a second,
into the real trader_service and strategy_service running the example
unchanged on one-second live bars, so each data bar is exactly one live bar.
The live fills are compared with ``trader.backtest.engine.run`` over the same
bars, read back from the store: the live bars equal the data bars, the same
bars decide and fill, the same sides, the same quantities, the same
commissions, and each live price within the backtest's slippage of the
backtest's price. The order decided at the last bar has no next bar to fill
at in the backtest and is left out.

The bound, measured and explained: a strategy decides at its bar's close,
which the service sees at the first tick of the next live bar (that bar's
open print), so its market order reaches tws-sim after that print and fills
at the touch: the ask (BUY) or bid (SELL) of tws-sim's one-tick quote around
the open. The backtest fills at the open with slippage ``s`` against the
trader; ``s`` = 1 bp makes ``open * s`` (about 0.015) cover the spread (0.01),
so |live - backtest| <= open * s, and the live price is asserted within one
spread of the open on the trader's side. Measured under the test machine's
load: fills reach the bus 20-240 ms after the bar's end, ticks 30-140 ms
after their print's due time.

The bars are continuous (open = previous close) and without wicks, so their
four prints are the open twice, then the close twice: a tick (or an order)
delayed by less than half a live bar (500 ms) still lands in its own bar (or
fills at the open's quote). With wicks, a close print delayed past the bar's
end was once bucketed into the next live bar (rsi_reversion, bar 14:38: the
live close was the high). That is what live bars are (ticks stamped on
arrival); slower replays (5 s live bars at 12x) tolerate wicks.

A bracket exit fills live at the touch after the print that crossed its
level (the replay's path is four prints), the backtest at the level (or the
open through a gap): their difference is bounded by the bar's range plus a
spread and the slippage.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from tests.backtest.parity_live import (
    KEY,
    LiveRun,
    live_config,
    replay_live,
    replay_stack,
    strategy_dir,
    write_store,
)
from tests.conftest import StackEnv
from trader.data.arctic import ArcticStore

pytestmark = pytest.mark.slow

LIVE_SECONDS = 1  # the live bar: one data minute played at 60x
BARS = 30
VOLUME = 400.0  # 100 shares a print: a tick's session volume names the print it carries
SPREAD = Decimal("0.01")  # AAPL's one-tick quote in tws-sim
SLIPPAGE = "0.0001"  # 1 bp of ~150 = 0.015, more than the spread

PARAMS: dict[str, dict[str, Any]] = {
    "ma_crossover": {"fast": 2, "slow": 4, "allow_short": True},
    "momentum": {"lookback": 3, "entry": 0.002, "exit": 0.0},
    "rsi_reversion": {"period": 3, "oversold": 30, "exit": 50, "overbought": 70, "allow_short": True},
    "smi_crossover": {"k": 4, "d": 2, "signal": 2, "allow_short": True},
}


def parity_bars(n: int = BARS, seed: int = 0) -> pd.DataFrame:
    """``n`` one-minute bars around 150: a sine of period 10 plus a random walk, in cents, 400 shares each.

    Continuous (each opens at the last close) and without wicks (high and low
    are the open and the close), so the replay's four prints are the open
    twice, then the close twice: the quote holds the open for the first half
    of the live bar and the close from its middle on (see the module docstring).
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n + 1)
    path = np.round(150 + 1.2 * np.sin(2 * np.pi * t / 10) + np.cumsum(rng.normal(0, 0.25, n + 1)), 2)
    opens, closes = path[:-1], path[1:]
    index = pd.date_range("2026-03-02 14:30", periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
                         "close": closes, "volume": np.full(n, VOLUME)}, index=index)


def backtest_orders(stem: str, config: dict[str, Any], uri: str, bars: pd.DataFrame) -> pd.DataFrame:
    """Return the backtest's orders: ``engine.run`` of the example as configured, on the bars its loader reads.

    The bars come from the market store through ``trader.backtest.data.load_for``
    (the backtest's own path), over the range the replay played.
    """
    from tests.strategy.test_examples import strategy_class
    from trader.backtest.data import load_for
    from trader.backtest.engine import run
    from trader.backtest.settings import with_overrides
    from trader.strategy import StrategyConfig

    strategy = strategy_class(stem)(StrategyConfig.model_validate(config), name=stem)
    settings = with_overrides(strategy.config.backtest,
                              {"start": bars.index[0], "end": bars.index[-1] + pd.Timedelta(minutes=1)})
    loaded = load_for(strategy, settings, store=ArcticStore(uri))
    assert list(loaded.bars) == [KEY]
    pd.testing.assert_frame_equal(loaded.bars[KEY][list(bars.columns)], bars, check_freq=False,
                                  check_index_type=False)
    return run(strategy, loaded.bars, settings, skipped=loaded.skipped).orders


def _time(stamp: pd.Timestamp) -> str:
    return "after the data" if pd.isna(stamp) else str(stamp.time())  # the last bar's order fills past the data


def _key(bar: pd.Timestamp, fill_bar: pd.Timestamp, reason: str, side: str, quantity: Decimal) -> str:
    decided = "" if reason != "signal" else f"decided {_time(bar)}, "
    return f"{_time(fill_bar)} {reason} ({decided}{side} {quantity})"


def compare(live: LiveRun, orders: pd.DataFrame, bars: pd.DataFrame) -> list[str]:
    """Return every difference between the live fills and the backtest's orders (the last bar's decision aside).

    Matched on the bar that filled, the reason, the deciding bar, the side and
    the quantity; then the commission exactly and the price within its bound.
    """
    last = bars.index[-1]
    got = [f for f in live.fills if not (f.reason == "signal" and f.bar >= last)]
    rows = [r for _, r in orders.iterrows() if not (r["reason"] == "signal" and r["time"] >= last)]
    live_keys = [_key(f.bar, f.fill_bar, f.reason, f.side, f.quantity) for f in got]
    test_keys = [_key(r["time"], r["fill_time"], r["reason"], r["side"], Decimal(str(r["quantity"]))) for r in rows]
    if live_keys != test_keys:
        return [f"the orders differ:\n  live:     {live_keys}\n  backtest: {test_keys}"]
    problems = []
    slippage = Decimal(SLIPPAGE)
    for fill, row in zip(got, rows, strict=True):
        when = f"{fill.fill_bar.time()} {fill.reason}"
        if fill.commission != Decimal(str(row["commission"])):
            problems.append(f"{when}: live commission {fill.commission} vs backtest {row['commission']}")
        bar = bars.loc[fill.fill_bar]
        opened, price = Decimal(str(bar["open"])), Decimal(str(row["price"]))
        bound = opened * slippage
        if fill.reason == "signal":
            adverse = fill.price - opened if fill.side == "BUY" else opened - fill.price
            if not Decimal(0) <= adverse <= SPREAD:
                problems.append(f"{when}: live {fill.side} at {fill.price}, not within a spread of the open "
                                f"{opened} on the trader's side (latency {fill.latency:.3f} s)")
        else:  # a bracket child fills at the touch after the print that crossed its level; the backtest at the level
            bound += Decimal(str(bar["high"] - bar["low"])) + SPREAD
        if abs(fill.price - price) > bound:
            problems.append(f"{when}: live price {fill.price} vs backtest {price}: more than {bound:.4f} apart")
    return problems


def run_case(stem: str, config: dict[str, Any], stack_env: StackEnv, tmp_path: Path) -> list[str]:
    """Replay the parity bars through the live stack running ``stem`` with ``config``; return the differences."""
    bars = parity_bars()
    uri = write_store(tmp_path / "arctic", bars)
    directory = strategy_dir(tmp_path / "strategies", stem, config)
    with replay_stack(stack_env, directory, uri, bars, LIVE_SECONDS) as stack:
        live = replay_live(stack, stem, bars, LIVE_SECONDS)
    decided = [f for f in live.fills if f.reason == "signal" and f.bar < bars.index[-1]]  # the last: by the timer
    latencies = [f.latency for f in decided]
    print(f"{stem}: {len(live.fills)} live fills, {live.ticks} ticks, {live.seconds:.1f} s; fill after the "
          f"bar's end: max {np.nanmax(latencies):.3f} s, mean {np.nanmean(latencies):.3f} s; print to tick: max "
          f"{max(live.tick_delays):.3f} s, mean {np.mean(live.tick_delays):.3f} s ({len(live.tick_delays)} prints)")
    for f in live.fills:
        print("   ", _key(f.bar, f.fill_bar, f.reason, f.side, f.quantity), f.price, f.commission, f"{f.latency:.3f}")
    assert not live.unmapped, f"orders that no data bar decided: {live.unmapped}"
    # The same bars: each data bar is one live bar, price for price.
    assert live.bars.index.notna().all(), f"live bars off the data's grid: {live.bars}"
    pd.testing.assert_frame_equal(live.bars, bars[["open", "high", "low", "close"]], check_freq=False,
                                  check_index_type=False)
    assert len(decided) >= 3, "the case should trade several times"
    return compare(live, backtest_orders(stem, config, uri, bars), bars)


@pytest.mark.parametrize("stem", sorted(PARAMS))
def test_live_fills_match_the_backtest(stem: str, stack_env: StackEnv, tmp_path: Path) -> None:
    problems = run_case(stem, live_config(PARAMS[stem], LIVE_SECONDS, SLIPPAGE), stack_env, tmp_path)
    assert not problems, "\n".join(problems)


def test_stop_loss_and_take_profit_match_the_backtest(stack_env: StackEnv, tmp_path: Path) -> None:
    config = live_config({**PARAMS["ma_crossover"], "allow_short": False}, LIVE_SECONDS, SLIPPAGE)
    config.update(stop_loss_percent=0.3, take_profit_percent=0.5)  # each entry from flat gets both
    problems = run_case("ma_crossover", config, stack_env, tmp_path)
    assert not problems, "\n".join(problems)
