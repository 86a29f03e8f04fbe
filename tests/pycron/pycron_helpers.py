"""Helpers for pycron tests: settings on a temp home, jobs from YAML text, a running supervisor, polling."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml

from pycron.config import PycronConfig, parse_jobs
from pycron.supervisor import Supervisor, utc_now
from tests.waiting import wait_until  # noqa: F401  (re-exported for the pycron tests)
from trader.config import Settings

CHILD = Path(__file__).resolve().parent / "child.py"


def make_settings(home: Path, profile: str = "default", **sections: Any) -> Settings:
    """Return settings rooted at ``home``; ``sections`` override whole sections (``bus={...}``)."""
    return Settings(home=home, profile=profile, **sections)


def jobs_from(text: str, settings: Settings) -> PycronConfig:
    """Parse a jobs file given as (indented) YAML text; ``{child}`` becomes the child script's argv."""
    text = textwrap.dedent(text).replace("{child}", f"{sys.executable} {CHILD}")
    return parse_jobs(yaml.safe_load(text), settings, "jobs.yaml")


@asynccontextmanager
async def running(
    config: PycronConfig, settings: Settings, clock: Callable[[], datetime] = utc_now
) -> AsyncIterator[Supervisor]:
    """Run a supervisor for the body of the ``async with``; always shut it down afterwards."""
    supervisor = Supervisor(
        config, settings, trader_env={"TRADER_HOME": str(settings.home)}, clock=clock
    )
    await supervisor.start()
    try:
        yield supervisor
    finally:
        await supervisor.shutdown()


class Event(NamedTuple):
    """One line written by child.py."""

    kind: str
    name: str
    pid: int
    time: float


def events(record: Path) -> list[Event]:
    """Return the events child processes wrote into ``record``, in order."""
    if not record.exists():
        return []
    out = []
    for line in record.read_text().splitlines():
        kind, name, pid, stamp = line.split()
        out.append(Event(kind, name, int(pid), float(stamp)))
    return out


def run(coro: Any, timeout: float = 30.0) -> Any:
    """Run a test coroutine on a fresh loop with an overall timeout."""
    return asyncio.run(asyncio.wait_for(coro, timeout))
