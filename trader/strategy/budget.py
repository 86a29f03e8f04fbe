"""Time budget: a strategy's code runs on its own worker thread, each call under the config's ``time_budget``.

Strategy code (``signals`` and every hook) runs on the strategy's own
thread, so a slow or broken strategy delays only itself. A call that takes
longer than the budget raises :class:`BudgetExceeded` (the runner puts the
strategy in ERROR): its thread cannot be killed, only abandoned, so the
strategy gets a fresh one (:meth:`StrategyThread.replace`) and the others
carry on. ``on_tick`` calls are queued to the same thread without waiting
(trader.strategy.runner polices their budget at the next tick).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

__all__ = ["BudgetExceeded", "StrategyThread"]


class BudgetExceeded(Exception):
    """A strategy call took longer than its time budget."""


class StrategyThread:
    """One strategy's worker thread, and its calls on it under a time budget of ``seconds``.

    ``on_replace`` is called each time a stuck thread is abandoned (what it
    had queued is gone with it).
    """

    def __init__(self, name: str, seconds: float, on_replace: Callable[[], None] = lambda: None) -> None:
        self.name = name
        self.seconds = seconds
        self._on_replace = on_replace
        self.executor: ThreadPoolExecutor | None = None  # None: not started (or stopped)

    def start(self) -> None:
        """Give the strategy its thread."""
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"strategy-{self.name}")

    def stop(self) -> None:
        """Let the thread go (a call running on it finishes unwaited)."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
            self.executor = None

    async def run_budgeted(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the strategy's thread; raise BudgetExceeded past the time budget."""
        if self.executor is None:
            raise RuntimeError("strategy is not started")
        future = asyncio.wrap_future(self.executor.submit(fn, *args))
        try:
            return await asyncio.wait_for(future, self.seconds)
        except TimeoutError:
            self.replace()
            raise BudgetExceeded(f"{what} took longer than its time budget of {self.seconds:g} s") from None

    def replace(self) -> None:
        """Give the strategy a fresh thread: a stuck call cannot be stopped, only abandoned."""
        if self.executor is not None:
            self.executor.shutdown(wait=False, cancel_futures=True)
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"strategy-{self.name}")
        self._on_replace()
