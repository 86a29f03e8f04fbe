"""Drift scores: each strategy's last drift from its backtest, kept in Redis so `strategy list` shows it after a restart.

The daily job (pycron's ``strategy_drift``: ``trader strategy drift --all
--record``) computes every enabled strategy's drift
(:mod:`trader.backtest.live_period`) and hands each record to strategy_service's
``record_drift``, which publishes it as ``strategy.<name>.drift``, keeps it
for ``strategy list`` (its ``drift`` field) and saves it here: a Redis hash
(``strategies.drift_key``, a :class:`~trader.saved_hash.SavedHash`) of
strategy -> the record as JSON. A record is :meth:`DriftReport.summary
<trader.backtest.drift.DriftReport.summary>` (score 0..100, matched, missing,
extra, PnL live/backtest/diff, notional, components, period) plus ``time``
(when it was computed), or ``score`` None and ``error`` (why there is none:
no fills, no bars). Money stays exact: Decimals are saved as their text and
read back as Decimals, times as ISO text and read back as datetimes.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trader.saved_hash import SavedHash

log = logging.getLogger(__name__)

__all__ = ["MONEY_FIELDS", "TIME_FIELDS", "DriftScores", "decode_record", "encode_record"]

MONEY_FIELDS = ("pnl_live", "pnl_backtest", "pnl_diff", "notional")
TIME_FIELDS = ("time", "start", "end")


def encode_record(record: dict[str, Any]) -> str:
    """Return a drift record as JSON text (Decimals and times as text)."""
    def plain(value: Any) -> Any:
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        raise TypeError(f"not JSON: {type(value).__name__}")

    return json.dumps(record, default=plain, sort_keys=True)


def decode_record(text: str) -> dict[str, Any]:
    """Return the record :func:`encode_record` wrote, its money as Decimals and its times as datetimes."""
    record = json.loads(text)
    for name in MONEY_FIELDS:
        if record.get(name) is not None:
            record[name] = Decimal(record[name])
    for name in TIME_FIELDS:
        if isinstance(record.get(name), str):
            record[name] = datetime.fromisoformat(record[name])
    return record


class DriftScores:
    """The strategies' last drift records in a Redis hash; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, key: str) -> None:
        self.hash = SavedHash(redis, key)

    async def load(self) -> dict[str, dict[str, Any]]:
        """Return every strategy's last record (none when Redis cannot be read: logged)."""
        try:
            saved = await self.hash.load()
        except RedisError as exc:
            log.warning("cannot read the saved drift scores (%s): none shown until the next run", exc)
            return {}
        out = {}
        for name, text in saved.items():
            try:
                out[name] = decode_record(text)
            except (ValueError, ArithmeticError) as exc:
                log.warning("saved drift record of %s unreadable (%s): ignored", name, exc)
        return out

    async def save(self, name: str, record: dict[str, Any]) -> None:
        """Remember ``name``'s last record; a failure is logged."""
        await self.hash.set(name, encode_record(record), lost="a restart shows the previous score")
