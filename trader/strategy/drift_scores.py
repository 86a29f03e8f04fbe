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
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from trader.errors import Unavailable
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
    """The strategies' last drift records, in memory (``records``) and in a Redis hash; see the module docstring.

    ``publish(topic, payload)`` sends a new record on the bus (the service's
    publisher); ``known(name)`` raises NotFound for a strategy the service
    does not run. The hash is read, and bound, by :meth:`load`.
    """

    def __init__(self, key: str, *, publish: Callable[[str, Any], None] | None = None,
                 known: Callable[[str], object] | None = None) -> None:
        self.key = key
        self.publish = publish
        self.known = known
        self.hash: SavedHash | None = None  # once :meth:`load` has Redis
        self.records: dict[str, dict[str, Any]] = {}  # strategy -> its last record

    async def load(self, redis: aioredis.Redis) -> dict[str, dict[str, Any]]:
        """Read every strategy's last record from ``redis`` into ``records``; return them (none if unreadable: logged)."""
        self.hash = SavedHash(redis, self.key)
        try:
            saved = await self.hash.load()
        except RedisError as exc:
            log.warning("cannot read the saved drift scores (%s): none shown until the next run", exc)
            return self.records
        for name, text in saved.items():
            try:
                self.records[name] = decode_record(text)
            except (ValueError, ArithmeticError) as exc:
                log.warning("saved drift record of %s unreadable (%s): ignored", name, exc)
        return self.records

    async def record(self, name: str, record: dict[str, Any]) -> dict[str, Any]:
        """Take ``name``'s new record (strategy_service's ``record_drift``): publish, keep for ``list``, save."""
        if self.known is not None:
            self.known(name)
        self.records[name] = record
        if self.publish is not None:
            self.publish(f"strategy.{name}.drift", record)
        log.info("drift of %s: score %s", name, record.get("score"))
        await self.save(name, record)
        return record

    async def save(self, name: str, record: dict[str, Any]) -> None:
        """Remember ``name``'s last record in Redis; a failure is logged."""
        if self.hash is None:
            raise Unavailable("the drift scores are not read yet (strategy_service is starting)")
        await self.hash.set(name, encode_record(record), lost="a restart shows the previous score")
