"""Running one download job: each instrument's windows from its source into the store, as windows.

For each instrument not yet done, the source is asked for the windows of
``[resume point, job end)``; each window is written to the store as a
window (replacing whatever was stored there), then the instrument's resume
point moves to the window's end, in Redis, under the job's lease. A kill
between the two repeats that window on the next run: written again, not
twice. Between windows the run looks for a cancel request. What goes wrong
with one instrument (a :class:`SourceError`, bars the store refuses, a
store that cannot be written, a bug in a source) fails that instrument,
with the reason, and the run goes on with the next.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pandas as pd

from trader.config import Settings
from trader.data.calendars import calendar_for_key
from trader.data.job import Item, ItemState, Job, JobState
from trader.data.jobs import JobQueue
from trader.data.progress import JobProgress
from trader.data.sources import open_source
from trader.data.sources.base import Source, Window
from trader.data.store import MarketStore, SymbolMeta
from trader.errors import SourceError, StorageError, TraderError, Unavailable, ValidationError

log = logging.getLogger(__name__)

__all__ = ["LeaseLost", "QueueDown", "run_job"]

Publish = Callable[[str, dict[str, Any]], None]


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
        async for window in windows:
            rows = await _write(store, job, item, window, meta)
            item = replace(item, done_until=window.end.to_pydatetime(), bars=item.bars + rows,
                           windows=item.windows + 1)
            await _save(queue, job, item)
            progress.update(item)
            publish(progress.topic("window"), {"job": job.id, "key": item.key, "start": window.start,
                                               "end": window.end, "bars": rows})
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
    log.info("job %s: %s done: %d bars in %d windows", job.id, item.key, item.bars, item.windows)
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
