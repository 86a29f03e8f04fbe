"""A download job and its instruments' progress: the records :mod:`trader.data.jobs` keeps in Redis.

A job names a source (and its options), instruments by contract key (a
universe's members, read when it was submitted), a bar size and a UTC range.
Each instrument has its own state, its resume point ``done_until`` (the end
of the last window written), the bars and windows it wrote (and how many
windows came empty: nothing written there), and its error.
A job ends DONE, PARTIAL (some instruments failed), FAILED (all of them) or
CANCELLED. A queued job, as read, says what it waits on (one job runs at a
time): ``queued_behind`` and how many jobs are ``ahead`` of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from trader.errors import NotFound

__all__ = ["TERMINAL", "Item", "ItemState", "Job", "JobState", "Waiting", "from_text", "to_text"]


def from_text(text: str | None) -> datetime | None:
    """Return the time an ISO text names (None for none)."""
    return datetime.fromisoformat(text) if text else None


def to_text(moment: datetime | None) -> str | None:
    """Return a time as UTC ISO text (None for none)."""
    return moment.astimezone(UTC).isoformat() if moment is not None else None


class JobState(StrEnum):
    """Where a job is: queued, running, or ended (PARTIAL: done, with some instruments failed)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    PARTIAL = "PARTIAL"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({JobState.DONE, JobState.PARTIAL, JobState.FAILED, JobState.CANCELLED})


class ItemState(StrEnum):
    """Where one instrument of a job is."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Item:
    """One instrument of a job: its state, its resume point and what it wrote."""

    key: str
    start: datetime  # where its download begins (the job's start, or its last stored bar for an update)
    state: ItemState = ItemState.PENDING
    done_until: datetime | None = None  # the end of the last window written: where a resumed run starts
    bars: int = 0
    windows: int = 0
    error: str = ""
    retryable: bool = False  # the failure may pass (a timeout, 429, pacing), not never (unknown, a bad file)
    empty: int = 0  # windows that came empty: nothing written, what was stored there kept

    @property
    def resume(self) -> datetime:
        """Return where the next run of this instrument starts."""
        return self.done_until or self.start

    def to_json(self) -> str:
        """Return the item as the JSON kept in Redis."""
        return json.dumps({"key": self.key, "start": to_text(self.start), "state": self.state.value,
                           "done_until": to_text(self.done_until), "bars": self.bars, "windows": self.windows,
                           "error": self.error, "retryable": self.retryable, "empty": self.empty})

    @classmethod
    def from_json(cls, text: str | bytes) -> Item:
        """Read an item back from its JSON."""
        data = json.loads(text)
        start = from_text(data["start"])
        assert start is not None
        return cls(data["key"], start, ItemState(data["state"]), from_text(data["done_until"]), int(data["bars"]),
                   int(data["windows"]), data["error"], bool(data.get("retryable", False)), int(data.get("empty", 0)))

    def to_dict(self) -> dict[str, Any]:
        """Return the item as an RPC answer."""
        return {"key": self.key, "state": self.state.value, "start": self.start, "done_until": self.done_until,
                "bars": self.bars, "windows": self.windows, "empty": self.empty, "error": self.error,
                "retryable": self.retryable}


@dataclass(frozen=True, slots=True)
class Waiting:
    """A running job standing still: its window waits on ``reason`` (IB pacing...) until ``until`` (UTC)."""

    until: datetime
    reason: str
    key: str = ""  # the instrument whose window waits

    def to_text(self) -> str:
        """Return it as the JSON kept in Redis."""
        return json.dumps({"until": to_text(self.until), "reason": self.reason, "key": self.key})

    @classmethod
    def from_text(cls, text: str) -> Waiting | None:
        """Read it back (None: empty text, the job does not wait)."""
        if not text:
            return None
        data = json.loads(text)
        until = from_text(data["until"])
        assert until is not None
        return cls(until, data["reason"], data.get("key", ""))

    def to_dict(self) -> dict[str, Any]:
        """Return it as an RPC answer or an event's payload."""
        return {"until": self.until, "reason": self.reason, "key": self.key}


@dataclass(frozen=True, slots=True)
class Job:
    """A download job: what to fetch, where it is, and each instrument's progress."""

    id: str
    source: str
    bar_size: str
    start: datetime
    end: datetime
    items: tuple[Item, ...]
    options: Mapping[str, Any] = field(default_factory=dict)
    universe: str = ""
    state: JobState = JobState.QUEUED
    created: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated: datetime | None = None
    runs: int = 0  # how many times a worker claimed it (more than 1: resumed after a crash or a retry)
    worker: str = ""
    cancel: bool = False
    waiting: Waiting | None = None  # the running job's window waits on pacing (until when, why)
    crashes: int = 0  # runs that ended with no outcome (the worker died, or an internal error), since the last retry
    error: str = ""  # why the last such run ended (a job FAILED for that: why it was given up)
    queued_behind: str = ""  # a queued job: the job it waits on (the running one, else the next in line)
    ahead: int = 0  # a queued job: how many jobs run before it (the running ones included)

    def item(self, key: str) -> Item:
        """Return the item of ``key``."""
        for item in self.items:
            if item.key == key:
                return item
        raise NotFound(f"job {self.id} has no instrument {key}", job=self.id, key=key)

    def counts(self) -> dict[str, int]:
        """Return how many instruments are in each state, the bars written and the windows that came empty."""
        out = {"total": len(self.items), "done": 0, "failed": 0, "bars": 0, "empty": 0}
        for item in self.items:
            out["bars"] += item.bars
            out["empty"] += item.empty
            if item.state is ItemState.DONE:
                out["done"] += 1
            elif item.state is ItemState.FAILED:
                out["failed"] += 1
        return out

    def outcome(self) -> JobState:
        """Return the state a run that went through every instrument ends the job in."""
        if self.cancel:
            return JobState.CANCELLED
        counts = self.counts()
        if counts["failed"] == 0:
            return JobState.DONE
        return JobState.FAILED if counts["done"] == 0 else JobState.PARTIAL

    def to_dict(self, *, items: bool = True) -> dict[str, Any]:
        """Return the job as an RPC answer (``items``: with each instrument's progress)."""
        out: dict[str, Any] = {
            "id": self.id, "state": self.state.value, "source": self.source, "bar_size": self.bar_size,
            "start": self.start, "end": self.end, "universe": self.universe, "options": dict(self.options),
            "created": self.created, "updated": self.updated, "runs": self.runs, "cancel": self.cancel,
            "waiting": self.waiting.to_dict() if self.waiting is not None else None,
            "crashes": self.crashes, "error": self.error, "queued_behind": self.queued_behind or None,
            "ahead": self.ahead, **self.counts()}
        if items:
            out["instruments"] = [item.to_dict() for item in self.items]
        return out
