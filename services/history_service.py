"""history_service: downloads bars into the market store, from durable jobs in Redis.

A job (a source, instruments or a universe, a bar size, a range) is queued in
Redis (:mod:`trader.data.jobs`) by ``submit`` and run by this service, one at
a time, under a lease it renews while it runs: each instrument's windows
from its source into the store, each window a window write
(:mod:`trader.data.download`), progress on the bus as ``job.<id>.<event>``
(:mod:`trader.data.progress`). After a kill -9 the next start (of this
service or another one on the same Redis) queues the job again and each
instrument resumes at the end of its last window written: at-least-once, and
nothing duplicated since a window written again replaces itself. On SIGTERM
the job in hand goes back to the queue at once. A run that ends with no
outcome (its worker killed, or an internal error escaping the run) counts as
a crash; after ``MAX_CRASHES`` of them since the job's last retry it is FAILED
with the reason (``error``) instead of run again, and an internal error keeps
the service DEGRADED until a job ends normally.

Instruments are contract keys or what the key grammar reads without a
broker (:mod:`trader.data.requests`: ``AAPL`` -> ``AAPL.STK``, ``ESZ6`` ->
``ES.FUT.202612``); a universe (records of kind ``universes`` in the store)
is its members' keys, read when the job is submitted. This service needs no
trader_service (the IB source has its own connection).

RPC: submit, jobs, job, cancel, retry (and status).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from trader.config import Settings
from trader.data.download import LeaseLost, QueueDown, run_job
from trader.data.factory import open_store
from trader.data.frames import utc
from trader.data.job import Job, JobState
from trader.data.jobs import JobQueue
from trader.data.requests import job_bar_size, job_end, job_key, last_stored, universe_keys
from trader.data.sources import check_source
from trader.data.store import MarketStore
from trader.errors import TraderError, ValidationError
from trader.messaging.rpc import MethodRegistry
from trader.service.base import Service, main

log = logging.getLogger(__name__)

IDLE_POLL = 1.0  # seconds between looks at the queue when idle (a submit here wakes the worker at once)
MAX_CRASHES = 3  # runs with no outcome before a job is given up (FAILED) rather than run again


class HistoryService(Service):
    """Runs the download jobs of the Redis queue; see the module docstring."""

    name = "history_service"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.opts = settings.history
        self.redis: aioredis.Redis | None = None
        self.queue: JobQueue | None = None
        self.store: MarketStore | None = None
        self.current: str | None = None
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._trouble: str | None = None  # an internal error's degraded reason, until a job ends normally

    def register_methods(self, registry: MethodRegistry) -> None:
        for name in ("submit", "jobs", "job", "cancel", "retry"):
            registry.register(name, getattr(self, name))

    # -- lifecycle -------------------------------------------------------------------
    async def on_start(self) -> None:
        r = self.settings.redis
        self.redis = aioredis.Redis(host=r.host, port=r.port, socket_timeout=5.0,
                                    password=r.password.get_secret_value() if r.password else None)
        self.queue = JobQueue(self.redis, self.opts.jobs_key)
        self.store = await asyncio.to_thread(open_store, self.settings)
        self._wake = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="history-worker")

    async def on_stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self.redis is not None:
            await self.redis.aclose()

    def status_info(self) -> dict[str, Any]:
        return {"job": self.current, "worker": self.queue.worker if self.queue else None}

    # -- the worker --------------------------------------------------------------------
    async def _work(self) -> None:
        """Recover dead workers' jobs, then claim and run jobs one at a time, for as long as the service runs."""
        assert self.queue is not None and self._wake is not None
        recovered_at = -1e9
        loop = asyncio.get_running_loop()
        while True:
            try:
                if loop.time() - recovered_at > self.queue.lease_ms / 1000 / 3:
                    await self.queue.recover()
                    recovered_at = loop.time()
                job = await self.queue.claim()
            except TraderError as exc:
                self.set_degraded(str(exc))
                await asyncio.sleep(IDLE_POLL)
                continue
            if self._trouble is None:
                self.set_running()
            if job is None:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_POLL)
                continue
            if job.crashes >= MAX_CRASHES:
                await self._give_up(job)
                continue
            await self._run(job)

    async def _give_up(self, job: Job) -> None:
        """End ``job`` FAILED: its last runs all ended with no outcome."""
        assert self.queue is not None
        why = f"given up after {job.crashes} runs that ended with no outcome; the last: {job.error}"
        log.error("job %s: %s", job.id, why)
        with contextlib.suppress(TraderError):  # Redis down: claimed again, and given up, once it is back
            await self.queue.finish(job.id, JobState.FAILED, why)

    async def _run(self, job: Job) -> None:
        assert self.queue is not None and self.store is not None
        self.current = job.id
        run = asyncio.get_running_loop().create_task(
            run_job(job, self.queue, self.store, self.settings, self._publish), name=f"job-{job.id}")
        keeper = asyncio.get_running_loop().create_task(self._keep_lease(job.id, run))
        try:
            state = await run
            log.info("job %s ended %s", job.id, state.value)
            self._trouble = None
            with contextlib.suppress(TraderError):  # forgetting old jobs can wait for the next one
                await self.queue.prune()
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                with contextlib.suppress(TraderError):  # the service stops: the job goes back to the queue now
                    await asyncio.shield(self._release(job.id))
                raise
            log.warning("job %s: lease lost; another worker has it", job.id)
        except LeaseLost:
            log.warning("job %s: lease lost; another worker has it", job.id)
        except (QueueDown, TraderError) as exc:
            log.error("job %s stopped: %s; it runs again once Redis is back", job.id, exc)
            self.set_degraded(f"job {job.id} stopped: {exc}")
        except Exception as exc:  # a bug: counted as a crash; the job runs again at once, or is given up
            log.exception("job %s stopped", job.id)
            self._trouble = f"job {job.id} stopped by an internal error (see the log)"
            self.set_degraded(self._trouble)
            await self._crashed(job, f"internal error: {type(exc).__name__}: {exc}")
        finally:
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)
            if not run.done():
                run.cancel()
                await asyncio.gather(run, return_exceptions=True)
            self.current = None

    async def _crashed(self, job: Job, reason: str) -> None:
        """Count a run of ``job`` that ended with no outcome; queue it again, or give it up after MAX_CRASHES."""
        assert self.queue is not None
        try:
            crashes = await self.queue.crashed(job.id, reason)
            if crashes >= MAX_CRASHES:
                await self._give_up(replace(job, crashes=crashes, error=reason))
            else:
                await self.queue.release(job.id)
        except TraderError as exc:  # Redis down: the lease lapses and recover() queues it again
            log.error("job %s: cannot record its crash: %s", job.id, exc)

    async def _keep_lease(self, job_id: str, run: asyncio.Task[JobState]) -> None:
        assert self.queue is not None
        while True:
            await asyncio.sleep(self.queue.lease_ms / 1000 / 3)
            try:
                if not await self.queue.renew(job_id):
                    run.cancel()
                    return
            except TraderError as exc:
                log.warning("job %s: lease not renewed: %s", job_id, exc)

    async def _release(self, job_id: str) -> None:
        assert self.queue is not None
        if await self.queue.release(job_id):
            log.info("job %s queued again: the service is stopping", job_id)

    def _publish(self, topic: str, payload: dict[str, Any]) -> None:
        if self.publisher is not None:
            self.publisher.publish(topic, payload)

    # -- RPC -----------------------------------------------------------------------------
    async def submit(self, source: str, bar_size: str, start: datetime, end: datetime | None = None,
                     instruments: list[str] | None = None, universe: str | None = None,
                     options: dict[str, Any] | None = None, from_stored: bool = False) -> dict[str, Any]:
        """Queue a download of ``instruments`` (or ``universe``'s members) and return the job.

        ``from_stored``: each instrument starts at its last bar stored in the range (an update).
        """
        assert self.queue is not None and self.store is not None
        check_source(source, self.settings)
        size = job_bar_size(bar_size)
        now = datetime.now(UTC)
        end = job_end(size, end and utc(end).to_pydatetime(), now)  # no bar that has not closed
        start, end = utc(start).to_pydatetime(), utc(end).to_pydatetime()
        if start > now:
            raise ValidationError(f"start {_moment(start)} is in the future (now {now:%Y-%m-%d %H:%M} UTC)",
                                  start=start.isoformat())
        if bool(instruments) == bool(universe):
            raise ValidationError("give instruments or a universe (one of them)")
        today = datetime.now(UTC).date()
        keys = [job_key(text, today) for text in instruments] if instruments else await asyncio.to_thread(
            universe_keys, self.store, universe or "")
        starts: dict[str, datetime] = {}
        if from_stored:
            for key in keys:
                last = await asyncio.to_thread(last_stored, self.store, key, size, start, end)
                if last is not None:
                    starts[key] = last
        job = await self.queue.submit(source=source, bar_size=size, start=start, end=end, keys=keys,
                                      options=options, universe=universe or "", starts=starts)
        if self._wake is not None:
            self._wake.set()
        return job.to_dict()

    async def jobs(self, limit: int = 50) -> list[dict[str, Any]]:
        """Return the newest ``limit`` jobs (without their instruments), newest first."""
        assert self.queue is not None
        return [job.to_dict(items=False) for job in await self.queue.jobs(limit)]

    async def job(self, job_id: str) -> dict[str, Any]:
        """Return one job with each instrument's progress and error."""
        assert self.queue is not None
        return (await self.queue.get(job_id)).to_dict()

    async def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job: a queued one at once, a running one within a second or two (even while it waits on pacing)."""
        assert self.queue is not None
        return (await self.queue.cancel(job_id)).to_dict()

    async def retry(self, job_id: str, instruments: list[str] | None = None) -> dict[str, Any]:
        """Queue an ended job again for its failed and unfinished instruments (or just ``instruments``)."""
        assert self.queue is not None
        today = datetime.now(UTC).date()
        keys = [job_key(text, today) for text in instruments] if instruments else None
        job = await self.queue.retry(job_id, keys)
        if self._wake is not None:
            self._wake.set()
        return job.to_dict()


def _moment(at: datetime) -> str:
    """Return a UTC moment as typed: its date, with the time unless it is midnight."""
    return f"{at:%Y-%m-%d}" if (at.hour, at.minute, at.second) == (0, 0, 0) else f"{at:%Y-%m-%d %H:%M:%S} UTC"


if __name__ == "__main__":
    sys.exit(main(HistoryService))
