"""The drift comparison on hand-made frames: matching by client order id, missing/extra, PnL gap, the score."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pandas as pd
import pytest

from trader.backtest.drift import PNL_HALF, compare, live_frame, score_of
from trader.backtest.result import ORDER_COLUMNS
from trader.domain import Action, Contract, Fill, SecType
from trader.strategy.sizing import client_order_id

NAME = "demo"
KEY = "AAPL.STK"
START = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
D = Decimal


def bars(n: int = 10, close: float = 100.0) -> pd.DataFrame:
    index = pd.date_range(START, periods=n, freq="1min", tz="UTC", name="time")
    return pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1000.0},
                        index=index)


BARS = {KEY: bars()}


def bar(i: int) -> pd.Timestamp:
    return BARS[KEY].index[i]


def order(i: int, side: str, qty: str, price: str, reason: str = "signal", instrument: str = KEY) -> dict[str, object]:
    return {"time": bar(i), "fill_time": bar(i + 1), "instrument": instrument, "side": side, "quantity": D(qty),
            "price": D(price), "commission": D("1.00"), "reason": reason}


def orders(*rows: dict[str, object]) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(ORDER_COLUMNS))


def coid(i: int) -> str:
    return client_order_id(NAME, KEY, bar(i).value)


def fill(coid_: str, side: str, qty: str, price: str, at: int, n: int = 0) -> Fill:
    return Fill(f"e{coid_}{n}", coid_, Contract("AAPL", SecType.STK), Action(side), D(qty), D(price),
                bar(at).to_pydatetime(), commission=D("1.00"))


def report(bt: pd.DataFrame, fills: list[Fill], **kw: object):
    return compare(NAME, bt, live_frame(fills), BARS, start=START, end=bar(9).to_pydatetime(), **kw)


def test_identical_trades_score_zero() -> None:
    bt = orders(order(1, "BUY", "100", "100"), order(5, "SELL", "100", "100"))
    live = [fill(coid(1), "BUY", "100", "100", 2), fill(coid(5), "SELL", "100", "100", 6)]
    r = report(bt, live)
    assert r.score == 0.0
    assert r.components == {"trades": 0.0, "pnl": 0.0}
    assert list(r.rows["status"]) == ["matched", "matched"]
    assert r.pnl_live == r.pnl_backtest == D("-2.00")  # two commissions, no price move
    assert r.notional == D(20000)


def test_partial_fills_sum_to_one_order() -> None:
    bt = orders(order(1, "BUY", "100", "100"))
    live = [fill(coid(1), "BUY", "40", "99", 2, 0), fill(coid(1), "BUY", "60", "101", 2, 1)]
    row = report(bt, live).rows.iloc[0]
    assert (row.status, row.qty_live, row.price_live, row.qty_diff) == ("matched", D(100), D("100.2"), D(0))


def test_missing_and_extra_are_named_by_bar() -> None:
    bt = orders(order(1, "BUY", "100", "100"), order(3, "SELL", "100", "100"))
    live = [fill(coid(1), "BUY", "100", "100", 2), fill(coid(6), "SELL", "100", "100", 7)]
    r = report(bt, live)
    missing = r.rows[r.rows.status == "missing"].iloc[0]
    extra = r.rows[r.rows.status == "extra"].iloc[0]
    assert (missing.bar, missing.side_backtest, missing.client_order_id) == (bar(3), "SELL", coid(3))
    assert (extra.bar, extra.side_live, extra.kind) == (bar(6), "SELL", "signal")  # found back from its id
    assert (r.count("matched"), r.count("missing"), r.count("extra")) == (1, 1, 1)
    assert r.components["trades"] == pytest.approx(2 / 3)


def test_an_unknown_live_id_is_other_at_its_fill_time() -> None:
    live = [fill(coid(1), "BUY", "100", "100", 2), fill("demo.flatten1234", "SELL", "100", "100", 8)]
    r = report(orders(order(1, "BUY", "100", "100")), live)
    other = r.rows[r.rows.status == "extra"].iloc[0]
    assert (other.kind, other.bar) == ("other", bar(8))


def test_a_price_difference_shows_in_pnl() -> None:
    bt = orders(order(1, "BUY", "100", "100"))
    live = [fill(coid(1), "BUY", "100", "100.50", 2)]
    r = report(bt, live)
    row = r.rows.iloc[0]
    assert row.price_diff == D("0.50")
    assert r.pnl_diff == D("-50.00")  # paid 0.50 more a share, marked at the same close
    notional = (D(10000) + D(10050)) / 2
    assert r.components["trades"] == 0.0
    assert r.components["pnl"] == pytest.approx(float(D(50) / (D(50) + PNL_HALF * notional)))
    assert 0 < r.score < 50


def test_quantity_difference_counts_its_fraction() -> None:
    bt = orders(order(1, "BUY", "100", "100"))
    r = report(bt, [fill(coid(1), "BUY", "75", "100", 2)])
    assert r.rows.iloc[0].qty_diff == D(-25)
    assert r.components["trades"] == pytest.approx(0.25)


def test_opposite_side_counts_as_a_whole_disagreement() -> None:
    r = report(orders(order(1, "BUY", "100", "100")), [fill(coid(1), "SELL", "100", "100", 2)])
    assert r.components["trades"] == 1.0


def test_stop_exit_matches_the_bracket_child() -> None:
    bt = orders(order(1, "BUY", "100", "100"), order(3, "SELL", "100", "98", reason="stop_loss"))
    live = [fill(coid(1), "BUY", "100", "100", 2), fill(coid(1) + ".sl", "SELL", "100", "98", 3)]
    r = report(bt, live)
    assert list(r.rows["status"]) == ["matched", "matched"]
    assert list(r.rows["kind"]) == ["signal", "stop_loss"]
    assert r.score == 0.0
    lone = report(orders(order(1, "BUY", "100", "100")), live)
    child = lone.rows[lone.rows.status == "extra"].iloc[0]
    assert (child.kind, child.bar) == ("stop_loss", bar(1))  # named by its parent's bar


def test_symbol_names_map_to_keys() -> None:
    bt = orders(order(1, "BUY", "100", "100", instrument="AAPL"))
    r = report(bt, [fill(coid(1), "BUY", "100", "100", 2)], keys={"AAPL": KEY})
    assert r.count("matched") == 1


def test_score_is_bounded_and_json_ready() -> None:
    bt = orders(order(1, "BUY", "100", "100"))
    r = report(bt, [fill(coid(4), "SELL", "100", "200", 5)])
    assert r.components["trades"] == 1.0 and 0.9 < r.components["pnl"] < 1.0
    assert 90 < r.score <= 100
    assert score_of({"trades": 1.0, "pnl": 1.0}) == 100.0
    data = r.to_dict()
    assert data["missing"] == 1 and data["extra"] == 1
    assert data["orders"][0]["qty_live"] is None  # NaN/None become null
