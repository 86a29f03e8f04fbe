"""The durable download job queue in Redis: jobs, their instruments' progress, claims under a lease.

A job (source, instruments, bar size, range) is a Redis hash under
``<jobs_key>:job:<id>``, its instruments' progress a second hash
``<jobs_key>:job:<id>:items`` (key -> JSON), the queued ids a list
``<jobs_key>:queue`` and every id in a sorted set ``<jobs_key>:index`` (by
creation time). A worker claims a job atomically (a Lua script of
:mod:`trader.data.job_leases`: pop, mark RUNNING, take the lease
``<jobs_key>:lease:<id>``, a key with an expiry that names the worker and
which the worker refreshes while it runs). Every write
of progress checks the lease first, so a worker that lost its job (it stalled
past the lease and another took over) writes nothing more.

After a kill -9 the lease lapses (or, when the holder was a process of this
host that is gone, :meth:`JobQueue.recover` breaks it at once) and the job is
queued again; each instrument resumes from ``done_until``, the end of the last
window written. That is at-least-once: the window in flight at the kill is
downloaded again and written again, and since a window write replaces that
window in the store (:meth:`MarketStore.write_bars`) nothing is duplicated.

One worker runs one job at a time, so a queued job, as read, names the job it
waits on (``queued_behind``: the running one, else the one just ahead in
line) and counts the jobs ``ahead`` of it, from the queue list and the
running set read with it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError, WatchError

from trader.data.job import TERMINAL, Item, ItemState, Job, JobState, Waiting, from_text, to_text
from trader.data.job_leases import (
    CLAIM,
    FINISH,
    LEASE_SECONDS,
    RENEW,
    REQUEUE,
    SAVE,
    holder_gone,
    worker_id,
)
from trader.errors import Conflict, NotFound, Unavailable, ValidationError

log = logging.getLogger(__name__)

__all__ = ["JOBS_KEPT", "LEASE_SECONDS", "JobQueue", "worker_id"]

JOBS_KEPT = 1000  # ended jobs beyond the newest this many are forgotten (a universe's nightly jobs: ~100 KB each)


def _now() -> str:
    """Return the time now as the UTC ISO text the jobs keep."""
    return datetime.now(UTC).isoformat()


def _text(value: Any) -> str:
    """Return a Redis reply as text (the client answers bytes; its stubs allow str and more)."""
    return value.decode() if isinstance(value, bytes) else str(value)


class _Line:
    """The queue as read with a job: what each queued job waits on, and how many jobs run before it."""

    def __init__(self, queued: list[bytes], running: set[bytes]) -> None:
        self.running = sorted(_text(i) for i in running)
        # Pushed on the left, claimed from the right. An id twice in the list (no step of the queue pushes
        # a queued job again, but an edit by hand or a race past these scripts could) is claimed at its
        # copy nearest the right; the claim then finds it no longer QUEUED at the other copy and drops
        # it. So a job stands where it is claimed: its first place in line; a later copy, or the copy
        # of a job that runs, is no place and no job ahead of another.
        self.line = [i for i in dict.fromkeys(_text(i) for i in reversed(queued)) if i not in self.running]
        self.position = {job_id: n for n, job_id in enumerate(self.line)}

    def ahead(self, job_id: str) -> int:
        """Return how many jobs run before ``job_id`` (0 if it is not queued)."""
        n = self.position.get(job_id)
        return 0 if n is None else len(self.running) + n

    def behind(self, job_id: str) -> str:
        """Return the job ``job_id`` waits on: a running one, else the one just ahead in line ("" if none)."""
        n = self.position.get(job_id)
        if n is None:
            return ""
        if self.running:
            return self.running[0]
        return self.line[n - 1] if n else ""


class JobQueue:
    """The jobs of one Redis under one key prefix (``settings.history.jobs_key``), seen by one worker."""

    def __init__(self, redis: aioredis.Redis, prefix: str, *, worker: str | None = None,
                 lease_seconds: float = LEASE_SECONDS) -> None:
        self.redis = redis
        self.prefix = prefix
        self.worker = worker or worker_id()
        self.lease_ms = int(lease_seconds * 1000)
        self._claim = redis.register_script(CLAIM)
        self._renew = redis.register_script(RENEW)
        self._save = redis.register_script(SAVE)
        self._finish = redis.register_script(FINISH)
        self._requeue = redis.register_script(REQUEUE)

    # -- keys --------------------------------------------------------------------------------
    def _job(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    def _items(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}:items"

    def _lease(self, job_id: str) -> str:
        return f"{self.prefix}:lease:{job_id}"

    @property
    def _queue(self) -> str:
        return f"{self.prefix}:queue"

    @property
    def _running(self) -> str:
        return f"{self.prefix}:running"

    @property
    def _index(self) -> str:
        return f"{self.prefix}:index"

    # -- submitting and reading --------------------------------------------------------------
    async def submit(self, *, source: str, bar_size: str, start: datetime, end: datetime, keys: Iterable[str],
                     options: Mapping[str, Any] | None = None, universe: str = "",
                     starts: Mapping[str, datetime] | None = None) -> Job:
        """Queue a new job over ``keys`` (each from ``starts[key]`` if given, else ``start``); return it."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            raise ValidationError("a job needs at least one instrument")
        if end <= start:
            raise ValidationError(f"the range is empty: {start.isoformat()} .. {end.isoformat()}")
        items = tuple(Item(key, min((starts or {}).get(key, start), end)) for key in keys)
        now = datetime.now(UTC)
        async with self._guard("submit a job"):
            while True:
                job_id = secrets.token_hex(4)
                if not await self.redis.exists(self._job(job_id)):
                    break
            job = Job(job_id, source, bar_size, start, end, items, dict(options or {}), universe, created=now,
                      updated=now)
            spec = json.dumps({"source": source, "bar_size": bar_size, "start": to_text(start), "end": to_text(end),
                               "options": dict(options or {}), "universe": universe, "created": to_text(now),
                               "keys": keys})
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(self._job(job_id), mapping={"spec": spec, "state": JobState.QUEUED.value,
                                                      "updated": to_text(now) or "", "runs": 0, "worker": "",
                                                      "cancel": 0})
                pipe.hset(self._items(job_id), mapping={item.key: item.to_json() for item in items})
                pipe.zadd(self._index, {job_id: now.timestamp()})
                pipe.lpush(self._queue, job_id)
                pipe.lrange(self._queue, 0, -1)
                pipe.smembers(self._running)
                *_, queued, running = await pipe.execute()
            line = _Line(queued, running)  # as it stood when the job joined it
            job = replace(job, queued_behind=line.behind(job_id), ahead=line.ahead(job_id))
        log.info("job %s queued: %d instrument(s), %s bars from %s, %s .. %s", job_id, len(items), bar_size,
                 source, start.isoformat(), end.isoformat())
        return job

    async def get(self, job_id: str) -> Job:
        """Return the job ``job_id`` (``NotFound`` if there is none)."""
        async with self._guard(f"read job {job_id}"), self.redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(self._job(job_id))
            pipe.hgetall(self._items(job_id))
            pipe.lrange(self._queue, 0, -1)
            pipe.smembers(self._running)
            fields, items, queued, running = await pipe.execute()
        if not fields:
            raise NotFound(f"no job {job_id!r}", job=job_id)
        return self._build(job_id, fields, items, _Line(queued, running))

    async def jobs(self, limit: int = 50) -> list[Job]:
        """Return the newest ``limit`` jobs, newest first."""
        async with self._guard("list the jobs"):
            ids = [_text(i) for i in await self.redis.zrevrange(self._index, 0, max(limit, 1) - 1)]
            # One transaction, as get() reads: the line and the jobs' states as they stood together (a claim
            # in between would show a RUNNING job still in line). A job gone since the ids were read is left out.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.lrange(self._queue, 0, -1)
                pipe.smembers(self._running)
                for job_id in ids:
                    pipe.hgetall(self._job(job_id))
                    pipe.hgetall(self._items(job_id))
                queued, running, *found = await pipe.execute()
        line = _Line(queued, running)
        return [self._build(job_id, found[2 * n], found[2 * n + 1], line) for n, job_id in enumerate(ids)
                if found[2 * n]]

    @staticmethod
    def _build(job_id: str, fields: Mapping[bytes, bytes], items: Mapping[bytes, bytes], line: _Line) -> Job:
        spec = json.loads(fields[b"spec"])
        state = JobState(fields[b"state"].decode())
        queued = state is JobState.QUEUED  # only a queued job waits on another: a stale place in line is none
        by_key = {k.decode(): Item.from_json(v) for k, v in items.items()}
        start, end, created = from_text(spec["start"]), from_text(spec["end"]), from_text(spec["created"])
        assert start is not None and end is not None and created is not None
        return Job(job_id, spec["source"], spec["bar_size"], start, end,
                   tuple(by_key[k] for k in spec["keys"] if k in by_key), spec["options"], spec["universe"],
                   state, created, from_text(fields.get(b"updated", b"").decode()),
                   int(fields.get(b"runs", 0)), fields.get(b"worker", b"").decode(),
                   fields.get(b"cancel", b"0") == b"1", waiting=Waiting.from_text(fields.get(b"waiting", b"").decode()),
                   crashes=int(fields.get(b"crashes", 0)), error=fields.get(b"error", b"").decode(),
                   queued_behind=line.behind(job_id) if queued else "", ahead=line.ahead(job_id) if queued else 0)

    # -- the worker's side -------------------------------------------------------------------
    async def claim(self) -> Job | None:
        """Take the oldest queued job under a lease (RUNNING); None if the queue is empty."""
        async with self._guard("claim a job"):
            found = await self._claim(keys=[self._queue, self._running],
                                      args=[self.prefix, self.worker, self.lease_ms, _now()])
        if not found:
            return None
        job = await self.get(_text(found))
        log.info("job %s claimed by %s (run %d)", job.id, self.worker, job.runs)
        return job

    async def renew(self, job_id: str) -> bool:
        """Extend this worker's lease on ``job_id``; False if it no longer holds it."""
        async with self._guard(f"renew the lease of job {job_id}"):
            return bool(await self._renew(keys=[self._lease(job_id)], args=[self.worker, self.lease_ms]))

    async def save(self, job_id: str, item: Item) -> bool:
        """Record an instrument's progress, if this worker still holds the job; return whether it did."""
        async with self._guard(f"save the progress of job {job_id}"):
            return bool(await self._save(keys=[self._lease(job_id), self._items(job_id), self._job(job_id)],
                                         args=[self.worker, item.key, item.to_json(), _now()]))

    async def cancel_requested(self, job_id: str) -> bool:
        """Return whether someone asked to cancel ``job_id``."""
        async with self._guard(f"read job {job_id}"):
            return await self.redis.hget(self._job(job_id), "cancel") == b"1"

    async def set_waiting(self, job_id: str, waiting: Waiting | None) -> None:
        """Record that the run of ``job_id`` waits (on pacing) until ``waiting.until``; None: it no longer waits."""
        async with self._guard(f"save the progress of job {job_id}"):
            await self.redis.hset(self._job(job_id), "waiting", waiting.to_text() if waiting is not None else "")

    async def finish(self, job_id: str, state: JobState, error: str = "") -> bool:
        """End a run of ``job_id`` in ``state`` (``error``: why, if given up) and drop the lease; False if not held."""
        async with self._guard(f"end job {job_id}"):
            done = await self._finish(keys=[self._lease(job_id), self._job(job_id), self._running],
                                      args=[self.worker, state.value, _now(), job_id, error])
        log.info("job %s %s", job_id, state.value if done else "lost (another worker holds it)")
        return bool(done)

    async def release(self, job_id: str) -> bool:
        """Give ``job_id`` back to the queue (this worker stops); return whether it held it."""
        async with self._guard(f"release job {job_id}"):
            return bool(await self._requeue(
                keys=[self._lease(job_id), self._job(job_id), self._running, self._queue],
                args=[job_id, _now(), self.worker]))

    async def crashed(self, job_id: str, reason: str) -> int:
        """Count a run of ``job_id`` that ended with no outcome, and why; return the count since the last retry."""
        async with self._guard(f"record the crash of job {job_id}"), self.redis.pipeline(transaction=True) as pipe:
            pipe.hincrby(self._job(job_id), "crashes", 1)
            pipe.hset(self._job(job_id), "error", reason)
            count, _ = await pipe.execute()
        return int(count)

    async def recover(self) -> list[str]:
        """Queue again the running jobs whose worker is gone (lease lapsed, or its process dead); return their ids."""
        back = []
        async with self._guard("recover the jobs of a dead worker"):
            for raw in await self.redis.smembers(self._running):
                job_id = _text(raw)
                found = await self.redis.get(self._lease(job_id))
                holder = _text(found) if found is not None else None
                if holder is not None and not holder_gone(holder):
                    continue
                requeued = await self._requeue(
                    keys=[self._lease(job_id), self._job(job_id), self._running, self._queue],
                    args=[job_id, _now(), holder or ""])
                if requeued:
                    gone = holder if holder is not None else "(lease lapsed)"
                    log.warning("job %s queued again: its worker %s is gone", job_id, gone)
                    await self.crashed(job_id, f"its worker {gone} died during the run")
                    back.append(job_id)
        return back

    async def prune(self, keep: int = JOBS_KEPT) -> int:
        """Forget the ended jobs older than the newest ``keep`` jobs; return how many went."""
        gone = 0
        async with self._guard("forget old jobs"):
            for raw in await self.redis.zrange(self._index, 0, -keep - 1):
                job_id = _text(raw)
                state = await self.redis.hget(self._job(job_id), "state")
                if state is None or JobState(_text(state)) in TERMINAL:
                    await self.redis.delete(self._job(job_id), self._items(job_id))
                    await self.redis.zrem(self._index, job_id)
                    gone += 1
        return gone

    # -- what users ask ----------------------------------------------------------------------
    async def cancel(self, job_id: str) -> Job:
        """Cancel a queued job at once, a running one at its next window; ``Conflict`` if it has ended."""
        key = self._job(job_id)
        async with self._guard(f"cancel job {job_id}"), self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    state = await pipe.hget(key, "state")
                    if state is None:
                        raise NotFound(f"no job {job_id!r}", job=job_id)
                    current = JobState(_text(state))
                    if current in TERMINAL:
                        raise Conflict(f"job {job_id} has ended ({current.value}): nothing to cancel",
                                       job=job_id, state=current.value)
                    pipe.multi()
                    pipe.hset(key, "cancel", 1)
                    if current is JobState.QUEUED:
                        pipe.hset(key, mapping={"state": JobState.CANCELLED.value,
                                                "updated": _now()})
                        pipe.lrem(self._queue, 0, job_id)
                    await pipe.execute()
                    break
                except WatchError:
                    continue
        log.info("job %s: cancel requested", job_id)
        return await self.get(job_id)

    async def retry(self, job_id: str, keys: Iterable[str] | None = None) -> Job:
        """Queue an ended job again for its failed and unfinished instruments (or just ``keys``); return it.

        Each instrument goes on from its resume point. ``Conflict`` if the job is
        queued or running, or has nothing left to do.
        """
        job = await self.get(job_id)
        if job.state not in TERMINAL:
            raise Conflict(f"job {job_id} is {job.state.value}: retry an ended job", job=job_id, state=job.state.value)
        wanted = set(keys) if keys is not None else None
        if wanted is not None:
            for key in wanted:
                job.item(key)  # NotFound for a key not in the job
        again = [replace(item, state=ItemState.PENDING, error="") for item in job.items
                 if item.state is not ItemState.DONE and (wanted is None or item.key in wanted)]
        if not again:
            raise Conflict(f"job {job_id} has nothing to retry: every instrument is done", job=job_id)
        key = self._job(job_id)
        async with self._guard(f"retry job {job_id}"), self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.hget(key, "state") != job.state.value.encode():
                    raise Conflict(f"job {job_id} changed meanwhile: try again", job=job_id)
                pipe.multi()
                pipe.hset(self._items(job_id), mapping={item.key: item.to_json() for item in again})
                pipe.hset(key, mapping={"state": JobState.QUEUED.value, "cancel": 0, "crashes": 0, "error": "",
                                        "updated": _now()})
                pipe.lpush(self._queue, job_id)
                await pipe.execute()
            except WatchError:
                raise Conflict(f"job {job_id} changed meanwhile: try again", job=job_id) from None
        log.info("job %s queued again for %d instrument(s)", job_id, len(again))
        return await self.get(job_id)

    @staticmethod
    @contextlib.asynccontextmanager
    async def _guard(what: str) -> AsyncIterator[None]:
        """Turn a Redis failure into ``Unavailable`` naming what was being done."""
        try:
            yield
        except RedisError as exc:
            raise Unavailable(f"cannot {what}: Redis: {exc}") from None
