"""Polling helpers for tests: wait for a condition with a timeout instead of sleeping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def wait_until(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition", interval: float = 0.02
) -> None:
    """Poll ``condition`` on the running loop until it holds; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        await asyncio.sleep(interval)


def wait_until_blocking(
    condition: Callable[[], bool], timeout: float = 10.0, what: str = "condition", interval: float = 0.05
) -> None:
    """The same for code without a loop: poll with ``time.sleep``."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not met within {timeout}s")
        time.sleep(interval)
