"""Saved hash: a small set kept in a Redis hash so that it outlives a restart (subscriptions, strategy switches).

A :class:`SavedHash` is one Redis hash of text fields and values: the
trader service's saved subscriptions (``trading.subscriptions_key``: contract
key -> when it was added) and the strategy service's enable/disable choices
(``strategies.switches_key``: strategy -> "1" or "0"). Every call waits no
longer than ``timeout`` for Redis (redis-py retries a lost server for
seconds): the RPC a save is part of answers in time. A save or a removal
that fails is logged (one line: what was not saved and what that means) and
answered False, never raised: the set is a convenience kept beside the
work, not the work. A read that fails raises RedisError (a timeout too, as
redis' TimeoutError): the caller knows whether to retry or to go on without.
"""

from __future__ import annotations

import asyncio
import logging

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeout

log = logging.getLogger(__name__)

__all__ = ["WRITE_TIMEOUT", "SavedHash"]

#: A read, save or removal waits no longer than this for Redis.
WRITE_TIMEOUT = 2.0


class SavedHash:
    """One Redis hash of text fields and values; see the module docstring."""

    def __init__(self, redis: aioredis.Redis, key: str, *, timeout: float = WRITE_TIMEOUT) -> None:
        self.redis = redis
        self.key = key
        self.timeout = timeout

    async def load(self) -> dict[str, str]:
        """Return every field and its value; RedisError if Redis cannot be read in time."""
        try:
            saved = await asyncio.wait_for(self.redis.hgetall(self.key), self.timeout)
        except TimeoutError:
            raise RedisTimeout(f"reading {self.key} took over {self.timeout:g} s") from None
        return {_text(k): _text(v) for k, v in saved.items()}

    async def set(self, field: str, value: str, *, lost: str) -> bool:
        """Save ``field`` = ``value``; return whether it was saved (a failure is logged with ``lost``, its meaning)."""
        try:
            await asyncio.wait_for(self.redis.hset(self.key, field, value), self.timeout)
        except (RedisError, TimeoutError) as exc:
            log.warning("%s=%s not saved in %s (%s): %s", field, value, self.key, _why(exc), lost)
            return False
        return True

    async def delete(self, field: str, *, lost: str) -> bool:
        """Remove ``field``; return whether it was there (False too when Redis fails: logged with ``lost``)."""
        try:
            return bool(await asyncio.wait_for(self.redis.hdel(self.key, field), self.timeout))
        except (RedisError, TimeoutError) as exc:
            log.warning("%s not removed from %s (%s): %s", field, self.key, _why(exc), lost)
            return False


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__  # asyncio's TimeoutError has no message
