"""Running one download job: each instrument's windows from its source into the store, as windows.

For each instrument not yet done, the source is asked for the windows of
``[resume point, job end)``; each window is written to the store as a
window (replacing whatever was stored there; a window that came empty writes
nothing and keeps what was stored, and is counted in the item's ``empty``,
since an empty answer may be transient), then the instrument's resume
point moves to the window's end, in Redis, under the job's lease. A kill
between the two repeats that window on the next run: written again, not
twice. The run looks for a cancel request between windows, and every
:data:`CANCEL_POLL` seconds while the source fetches a window: the fetch
runs as a task, cancelled on a request (the window is written in one call
once complete, so a cancelled window leaves nothing half-written); a
source waiting on IB's pacing thus stops within a second or so. A wait the
source's pacing reports (:data:`trader.data.pacing.wait_listener`) is kept
in the job (``waiting``) and published as ``job.<id>.waiting``. What goes wrong
with one instrument (a :class:`SourceError`, bars the store refuses, a
store that cannot be written, a bug in a source) fails that instrument,
with the reason, and the run goes on with the next.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd

from trader.config import Settings
from trader.data.calendars import calendar_for_key
from trader.data.job import Item, ItemState, Job, JobState, Waiting
from trader.data.jobs import JobQueue
from trader.data.pacing import wait_listener
from trader.data.progress import JobProgress
from trader.data.sources import open_source
from trader.data.sources.base import Source, Window
from trader.data.store import MarketStore, SymbolMeta
from trader.errors import SourceError, StorageError, TraderError, Unavailable, ValidationError

log = logging.getLogger(__name__)

__all__ = ["LeaseLost", "QueueDown", "run_job"]

Publish = Callable[[str, dict[str, Any]], None]

CANCEL_POLL = 1.0  # seconds between looks for a cancel request while a window is fetched


class LeaseLost(Exception):
    """Another worker took the job over (this one stalled past its lease): stop without writing more."""


class QueueDown(Exception):
    """Redis could not be reached to record progress: stop; the job is queued again once its lease lapses."""


class _Cancelled(Exception):
    """The job was cancelled: stop after the window written."""


async def run_job(job: Job, queue: JobQueue, store: MarketStore, settings: Settings, publish: Publish) -> JobState:
    """Run ``job``'s instruments not yet done, then end the job; return the state it ended in.

    Raises :class:`LeaseLost` if the job was taken over meanwhile, :class:`QueueDown` (or
    ``Unavailable`` at the very end) if Redis could not be reached.
    """
    progress = JobProgress(job)
    publish(progress.topic("started"), {**progress.figures(), "runs": job.runs, "source": job.source,
                                        "bar_size": job.bar_size})
    try:
        source: Source | None = open_source(job.source, settings, job.options)
        opened = ""
    except TraderError as exc:
        source, opened = None, str(exc)
    try:
        for item in job.items:
            if item.state in (ItemState.DONE, ItemState.FAILED):  # a retry reset the failed ones it runs
                continue
            await _check_cancel(queue, job)
            if source is None:
                item = replace(item, state=ItemState.FAILED, error=f"{item.key}: {opened}")
            else:
                item = await _instrument(job, item, source, queue, store, progress, publish)
            await _save(queue, job, item)
            progress.update(item)
            publish(progress.topic("instrument"), {**progress.figures(), "key": item.key,
                                                   "state": item.state.value, "item_bars": item.bars,
                                                   "error": item.error})
        state = replace(job, items=tuple(progress.items.values())).outcome()
    except _Cancelled:
        state = JobState.CANCELLED
    finally:
        if source is not None:
            try:
                await source.close()
            except Exception:  # closing must not hide the job's outcome
                log.exception("job %s: closing source %s failed", job.id, job.source)
    if not await queue.finish(job.id, state):
        raise LeaseLost(job.id)
    publish(progress.topic(state.value.lower()), {**progress.figures(), "state": state.value})
    return state


async def _save(queue: JobQueue, job: Job, item: Item) -> None:
    try:
        saved = await queue.save(job.id, item)
    except Unavailable as exc:
        raise QueueDown(str(exc)) from None
    if not saved:
        raise LeaseLost(job.id)


async def _check_cancel(queue: JobQueue, job: Job) -> None:
    try:
        cancel = await queue.cancel_requested(job.id)
    except Unavailable as exc:
        raise QueueDown(str(exc)) from None
    if cancel:
        raise _Cancelled


async def _instrument(job: Job, item: Item, source: Source, queue: JobQueue, store: MarketStore,
                      progress: JobProgress, publish: Publish) -> Item:
    """Download one instrument from its resume point; return it DONE or FAILED (``_Cancelled`` between windows)."""
    end = pd.Timestamp(job.end)
    item = replace(item, state=ItemState.RUNNING, error="")
    await _save(queue, job, item)
    try:
        meta = await _meta(source, item.key, job.source)
        windows = source.windows(item.key, job.bar_size, pd.Timestamp(item.resume), end) if item.resume < job.end \
            else _nothing()  # every window written: the run was stopped before it could say so
        watch = _Watch(job, item.key, queue, progress, publish)
        while (window := await watch.next(windows)) is not None:
            rows = await _write(store, job, item, window, meta)
            item = replace(item, done_until=window.end.to_pydatetime(), bars=item.bars + rows,
                           windows=item.windows + 1, empty=item.empty + window.frame.empty)
            await _save(queue, job, item)
            progress.update(item)
            publish(progress.topic("window"), {"job": job.id, "key": item.key, "start": window.start,
                                               "end": window.end, "bars": rows, "empty": window.frame.empty})
            publish(progress.topic("progress"), progress.figures())
            await _check_cancel(queue, job)
        if item.resume < job.end and getattr(source, "covers_range", True):  # a file covers its own span only
            raise SourceError.of(item.key, f"the source stopped at {item.resume.isoformat()}, before the end "
                                 f"{job.end.isoformat()}")
    except (_Cancelled, LeaseLost, QueueDown, asyncio.CancelledError):
        raise
    except TraderError as exc:
        log.warning("job %s: %s failed: %s", job.id, item.key, exc)
        return replace(item, state=ItemState.FAILED, error=_named(item.key, str(exc)), retryable=_passing(exc))
    except Exception as exc:  # a bug in a source fails its instrument, not the job
        log.exception("job %s: %s failed", job.id, item.key)
        return replace(item, state=ItemState.FAILED, error=f"{item.key}: internal error: {exc!r}")
    log.info("job %s: %s done: %d bars in %d windows (%d empty)", job.id, item.key, item.bars, item.windows,
             item.empty)
    return replace(item, state=ItemState.DONE)


def _passing(exc: TraderError) -> bool:
    """Return whether the same request may succeed later: a retryable SourceError, the store or broker down."""
    return exc.retryable if isinstance(exc, SourceError) else isinstance(exc, (Unavailable, StorageError))


async def _meta(source: Source, key: str, name: str) -> SymbolMeta:
    """Return the metadata to store with ``key``'s bars: the source's description, else its calendar's zone.

    Without a contract from the source, the stored contract is kept (the store merges).
    """
    describe = getattr(source, "describe", None)
    if describe is not None:
        found = await describe(key)
        if found is not None:
            return found
    try:
        timezone = calendar_for_key(key).timezone
    except ValidationError:
        timezone = ""
    return SymbolMeta(key=key, source=name, timezone=timezone)


class _Watch:
    """Fetch an instrument's windows one by one as tasks, looking for a cancel and for pacing waits meanwhile."""

    def __init__(self, job: Job, key: str, queue: JobQueue, progress: JobProgress, publish: Publish) -> None:
        self.job, self.key, self.queue, self.progress, self.publish = job, key, queue, progress, publish
        self.latest: Waiting | None = None  # the source's last wait, as it told it
        self.shown: Waiting | None = None  # the wait the job says it is in

    def __call__(self, seconds: float, reason: str) -> None:
        """Hear a wait of the source's pacing (a :data:`~trader.data.pacing.wait_listener`)."""
        self.latest = Waiting(datetime.now(UTC) + timedelta(seconds=seconds), reason, self.key)

    async def next(self, windows: AsyncIterator[Window]) -> Window | None:
        """Return the next window (None: no more); ``_Cancelled`` if a cancel is asked while it is fetched."""
        async def pull() -> Window | None:
            try:
                return await anext(windows)
            except StopAsyncIteration:
                return None

        token = wait_listener.set(self)  # the fetch task copies the context: the source's waits come here
        try:
            fetch = asyncio.get_running_loop().create_task(pull(), name=f"job-{self.job.id}-{self.key}")
        finally:
            wait_listener.reset(token)
        try:
            while not (await asyncio.wait({fetch}, timeout=CANCEL_POLL))[0]:
                await self._show(self.latest if self.latest is not None
                                 and self.latest.until > datetime.now(UTC) else None)
                await _check_cancel(self.queue, self.job)
        finally:
            if not fetch.done():
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):  # its reason to stop is ours
                    await fetch
        self.latest = None
        await self._show(None)  # the window came (or the source failed): no longer waiting
        return fetch.result()

    async def _show(self, waiting: Waiting | None) -> None:
        """Keep ``waiting`` in the job and publish it, if it is not what the job already says."""
        if waiting == self.shown:
            return
        self.shown = waiting
        try:
            await self.queue.set_waiting(self.job.id, waiting)
        except Unavailable as exc:
            raise QueueDown(str(exc)) from None
        if waiting is not None:
            log.info("job %s: %s waits on %s until %s", self.job.id, self.key, waiting.reason,
                     waiting.until.strftime("%H:%M:%S"))
        self.publish(self.progress.topic("waiting"), {**self.progress.figures(), "key": self.key,
                                                      "waiting": waiting.to_dict() if waiting else None})


async def _nothing() -> AsyncIterator[Window]:
    return
    yield


async def _write(store: MarketStore, job: Job, item: Item, window: Window, meta: SymbolMeta) -> int:
    """Write one window (checked to lie inside what was asked); return the rows written."""
    if window.start < pd.Timestamp(item.resume) or window.end > pd.Timestamp(job.end) or window.end <= window.start:
        raise SourceError.of(item.key, f"the source gave the window {window.start.isoformat()} .. "
                             f"{window.end.isoformat()}, outside {item.resume.isoformat()} .. {job.end.isoformat()}")
    return await asyncio.to_thread(store.write_bars, item.key, job.bar_size, window.frame, start=window.start,
                                   end=window.end, meta=meta)


def _named(key: str, message: str) -> str:
    """Return ``message`` starting with the instrument's key (the store's and the sources' errors already do)."""
    return message if message.startswith(key) else f"{key}: {message}"
