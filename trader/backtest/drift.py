"""Drift: a strategy's live (or paper) orders against the backtest of the same bars, and one score for the gap.

:func:`compare` takes the backtest's orders (``result.ORDER_COLUMNS``) and the
live fills of the same period (:func:`live_frame`) and matches them by
client order id, which the strategy service derives from (strategy,
instrument, bar start) (:func:`trader.strategy.sizing.client_order_id`): the
backtest's order decided at bar ``t`` on ``key`` gets the id the live order
for that bar got, and a stop loss or take profit exit the id of the bracket
child of the entry it closes (``<entry id>.sl`` / ``.tp``). So a match is
exact: same instrument, same bar, no tolerance windows. A live order is the
sum of its fills (quantity, volume-weighted price, commissions). What the
live side has alone is *extra* (a flatten, a bar the backtest did not
trade), what the backtest has alone is *missing*; each is named by its bar
(a live id is found back by hashing every bar of the period; an id that
names no bar, as a ``strategy disable --flatten`` order's, is kind
``other`` at its first fill's time).

PnL is counted the same way on both sides: the fills through one
:class:`~trader.domain.figures.Lot` per instrument (commissions in),
realized + unrealized marked at the last bar's close of the period, so the
difference is the trades' difference, not two accountings'.

The drift score, 0..100 (0: the same trades at the same prices):

- ``trades``: the fraction of orders that disagree, over the union of both
  sides (matched + missing + extra): a missing or extra order counts 1, a
  matched one ``|live qty - backtest qty| / max(|live|, |backtest|)``
  (signed, so an opposite side counts 1). 0..1.
- ``pnl``: the PnL gap relative to the traded notional ``N`` (the mean of
  both sides' sum of ``quantity x price x multiplier``):
  ``|gap| / (|gap| + PNL_HALF x N)``, so a gap of 1 % of the notional scores
  0.5 and it tends to 1 as the gap grows. 0..1.
- ``score = 100 x (trades + pnl) / 2``.

Both sides empty is a score of 0; the caller (:mod:`trader.backtest.live_period`)
refuses a period without fills or bars before this is reached.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd

from trader.domain import Fill
from trader.domain.figures import Lot
from trader.strategy.orders import root_order_id
from trader.strategy.sizing import client_order_id

__all__ = ["COMPARE_COLUMNS", "LIVE_COLUMNS", "PNL_HALF", "DriftReport", "backtest_ids", "bar_ids", "compare",
           "live_frame", "score_of"]

#: A PnL gap of this fraction of the traded notional scores 0.5 on the pnl component.
PNL_HALF = Decimal("0.01")
LIVE_COLUMNS = ("time", "client_order_id", "instrument", "side", "quantity", "price", "commission", "multiplier")
COMPARE_COLUMNS = ("bar", "instrument", "kind", "client_order_id", "status", "side_backtest", "side_live",
                   "qty_backtest", "qty_live", "price_backtest", "price_live", "qty_diff", "price_diff")
_EXITS = {"stop_loss": "sl", "take_profit": "tp"}
_KINDS = {"sl": "stop_loss", "tp": "take_profit"}
_ZERO = Decimal(0)
_ONE = Decimal(1)


@dataclass
class DriftReport:
    """The comparison of one strategy's live orders with its backtest over one period; see the module docstring.

    ``rows`` has one row per order on either side (``COMPARE_COLUMNS``), by
    bar; ``status`` is ``matched``, ``missing`` (backtest only) or ``extra``
    (live only). PnL figures are net of commissions, in the instruments'
    currency. ``notes`` say what was left out of the comparison and why.
    """

    strategy: str
    start: datetime
    end: datetime
    rows: pd.DataFrame
    pnl_live: Decimal
    pnl_backtest: Decimal
    notional: Decimal
    components: dict[str, float]
    score: float
    notes: list[str] = field(default_factory=list)

    @property
    def pnl_diff(self) -> Decimal:
        """Return live PnL minus backtest PnL."""
        return self.pnl_live - self.pnl_backtest

    def count(self, status: str) -> int:
        """Return how many rows have ``status``."""
        return int((self.rows["status"] == status).sum()) if len(self.rows) else 0

    def summary(self) -> dict[str, Any]:
        """Return the headline figures (what the daily job publishes and `strategy list` shows)."""
        return {"strategy": self.strategy, "start": self.start, "end": self.end, "score": self.score,
                "matched": self.count("matched"), "missing": self.count("missing"), "extra": self.count("extra"),
                "pnl_live": self.pnl_live, "pnl_backtest": self.pnl_backtest, "pnl_diff": self.pnl_diff,
                "notional": self.notional, "components": dict(self.components)}

    def to_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data: the summary, each order row and the notes."""
        rows = [{k: (None if _missing(v) else v) for k, v in row.items()} for row in self.rows.to_dict("records")]
        return {**self.summary(), "orders": rows, "notes": list(self.notes)}


def _missing(value: Any) -> bool:
    return value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value))


def live_frame(fills: Iterable[Fill]) -> pd.DataFrame:
    """Return ``fills`` as the live side of :func:`compare` (``LIVE_COLUMNS``, oldest first)."""
    rows = [(f.time, f.client_order_id or f"manual:{f.exec_id}", f.contract.key, f.action.value, f.quantity,
             f.price, f.commission or _ZERO, f.contract.multiplier or _ONE) for f in fills]
    frame = pd.DataFrame(rows, columns=list(LIVE_COLUMNS))
    return frame.sort_values("time", kind="stable").reset_index(drop=True)


def _dec(value: Any) -> Decimal:
    """Return a frame's number as a Decimal: a float by its shortest text (100.13 stays 100.13)."""
    return value if isinstance(value, Decimal) else Decimal(repr(float(value)))


def _signed(side: str, quantity: Decimal) -> Decimal:
    return quantity if side == "BUY" else -quantity


def _bar_id(name: str, key: str, bar: pd.Timestamp) -> str:
    # The strategy service's id: the bar start in whole microseconds, as ns (trader.strategy.orders._ns).
    return client_order_id(name, key, (bar.value // 1000) * 1000)


def backtest_ids(name: str, orders: pd.DataFrame, keys: Mapping[str, str]) -> list[str]:
    """Return the client order id the live service gives each backtest order (by row, in order).

    A signal order gets its bar's id; a stop loss or take profit exit the id
    of the bracket child of the last signal order on its instrument before it.
    """
    ids: list[str] = []
    entry: dict[str, str] = {}
    for row in orders.itertuples(index=False):
        key = keys.get(row.instrument, row.instrument)
        suffix = _EXITS.get(str(row.reason))
        if suffix is None:
            coid = _bar_id(name, key, pd.Timestamp(row.time))
            entry[key] = coid
        else:
            coid = f"{entry.get(key, _bar_id(name, key, pd.Timestamp(row.time)))}.{suffix}"
        ids.append(coid)
    return ids


def _live_orders(live: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """Sum each live order's fills: side, signed quantity, volume-weighted price, commission, first fill time."""
    out: dict[str, dict[str, Any]] = {}
    for row in live.itertuples(index=False):
        order = out.setdefault(row.client_order_id, {"instrument": row.instrument, "signed": _ZERO, "value": _ZERO,
                                                     "qty": _ZERO, "commission": _ZERO, "time": row.time,
                                                     "multiplier": row.multiplier})
        order["signed"] += _signed(row.side, row.quantity)
        order["qty"] += row.quantity
        order["value"] += row.quantity * row.price
        order["commission"] += row.commission
    return out


def bar_ids(name: str, bars: Mapping[str, pd.DataFrame]) -> dict[str, tuple[str, pd.Timestamp]]:
    """Return every bar's order id -> (instrument, bar start): a live order's bar, found back from its id."""
    return {_bar_id(name, key, ts): (key, ts) for key, frame in bars.items() for ts in frame.index}


def _side(signed: Decimal) -> str:
    return "BUY" if signed > 0 else "SELL"


def compare(name: str, orders: pd.DataFrame, live: pd.DataFrame, bars: Mapping[str, pd.DataFrame], *,
            start: datetime, end: datetime, keys: Mapping[str, str] | None = None,
            notes: Iterable[str] = (), index: Mapping[str, tuple[str, pd.Timestamp]] | None = None) -> DriftReport:
    """Compare the backtest's ``orders`` with the ``live`` fills of strategy ``name``; see the module docstring.

    ``bars`` (contract key -> the period's bars) name the live orders' bars and
    mark both sides' positions at the last close; ``keys`` maps the backtest's
    instrument names to contract keys where they differ (symbol -> key);
    ``index`` is :func:`bar_ids` of ``bars`` if the caller has it already
    (hashing every bar takes about 1 s per 100,000).
    """
    keys = dict(keys or {})
    bt_ids = backtest_ids(name, orders, keys)
    live_orders = _live_orders(live)
    if index is None:
        index = bar_ids(name, bars)
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for coid, row in zip(bt_ids, orders.itertuples(index=False), strict=True):
        key = keys.get(row.instrument, row.instrument)
        signed = _signed(str(row.side), _dec(row.quantity))
        mine = live_orders.get(coid)
        seen.add(coid)
        kind = str(row.reason) if str(row.reason) in _EXITS else "signal"
        out = {"bar": pd.Timestamp(row.time), "instrument": key, "kind": kind, "client_order_id": coid,
               "side_backtest": str(row.side), "qty_backtest": signed, "price_backtest": _dec(row.price)}
        rows.append({**out, **_live_part(mine, signed, _dec(row.price))})
    for coid, mine in live_orders.items():
        if coid in seen:
            continue
        head, _, tail = coid.rpartition(".")
        found = index.get(root_order_id(coid))
        kind = _KINDS.get(tail, "signal") if found and head.count(".") >= 1 else ("signal" if found else "other")
        rows.append({"bar": found[1] if found else pd.Timestamp(mine["time"]), "instrument": mine["instrument"],
                     "kind": kind, "client_order_id": coid, "side_backtest": None, "qty_backtest": None,
                     "price_backtest": None, **_live_part(mine, None, None)})
    table = pd.DataFrame(rows, columns=list(COMPARE_COLUMNS))
    if len(table):
        table = table.sort_values(["bar", "instrument"], kind="stable").reset_index(drop=True)
    marks = {key: Decimal(repr(float(frame["close"].iloc[-1]))) for key, frame in bars.items() if len(frame)}
    multipliers = {o["instrument"]: o["multiplier"] for o in live_orders.values()}
    bt_fills = [(keys.get(r.instrument, r.instrument), _signed(str(r.side), _dec(r.quantity)), _dec(r.price),
                 _dec(r.commission)) for r in orders.itertuples(index=False)]
    lv_fills = [(r.instrument, _signed(r.side, r.quantity), r.price, r.commission) for r in live.itertuples(index=False)]
    pnl_bt, notional_bt = _pnl(bt_fills, marks, multipliers)
    pnl_live, notional_live = _pnl(lv_fills, marks, multipliers)
    notional = (notional_bt + notional_live) / 2
    components = _components(table, pnl_live - pnl_bt, notional)
    return DriftReport(name, start, end, table, pnl_live, pnl_bt, notional, components,
                       score_of(components), list(notes))


def _live_part(mine: dict[str, Any] | None, signed: Decimal | None, price: Decimal | None) -> dict[str, Any]:
    """Return a row's live columns and differences (status from which sides have the order)."""
    if mine is None:
        return {"status": "missing", "side_live": None, "qty_live": None, "price_live": None,
                "qty_diff": None, "price_diff": None}
    qty = mine["signed"]
    vwap = mine["value"] / mine["qty"] if mine["qty"] else None
    matched = signed is not None
    return {"status": "matched" if matched else "extra", "side_live": _side(qty) if qty else None,
            "qty_live": qty, "price_live": vwap,
            "qty_diff": qty - signed if matched else None,
            "price_diff": vwap - price if matched and vwap is not None and price is not None else None}


def _pnl(fills: list[tuple[str, Decimal, Decimal, Decimal]], marks: Mapping[str, Decimal],
         multipliers: Mapping[str, Decimal]) -> tuple[Decimal, Decimal]:
    """Return (realized + unrealized marked at ``marks``, traded notional) of ``fills`` (key, signed, price, fee)."""
    lots: dict[str, Lot] = {}
    notional = _ZERO
    for key, signed, price, fee in fills:
        lot = lots.setdefault(key, Lot(multiplier=multipliers.get(key, _ONE)))
        lot.apply(signed, price, fee)
        notional += abs(signed) * abs(price) * lot.multiplier
    total = _ZERO
    for key, lot in lots.items():
        figures = lot.figures(marks.get(key))
        total += (figures.realized or _ZERO) + (figures.unrealized or _ZERO)
    return total, notional


def _components(table: pd.DataFrame, gap: Decimal, notional: Decimal) -> dict[str, float]:
    """Return the score's two components (``trades``, ``pnl``), each 0..1; see the module docstring."""
    disagree = 0.0
    for row in table.itertuples(index=False):
        if row.status != "matched":
            disagree += 1.0
        else:
            largest = max(abs(row.qty_live), abs(row.qty_backtest))
            disagree += float(min(_ONE, abs(row.qty_diff) / largest)) if largest else 0.0
    trades = disagree / len(table) if len(table) else 0.0
    if gap == 0:
        pnl = 0.0
    elif notional == 0:
        pnl = 1.0
    else:
        pnl = float(abs(gap) / (abs(gap) + PNL_HALF * notional))
    return {"trades": trades, "pnl": pnl}


def score_of(components: Mapping[str, float]) -> float:
    """Return the drift score, 0..100, of the ``trades`` and ``pnl`` components (each 0..1)."""
    return round(100.0 * (components["trades"] + components["pnl"]) / 2.0, 2)
