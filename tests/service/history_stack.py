"""The processes history_service's tests run: Redis, the bus and history_service with the csv test source."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from tests.conftest import StackEnv, TradingStack, wait_for_port


@contextlib.contextmanager
def started_history(stack_env: StackEnv) -> Iterator[TradingStack]:
    """Redis, the bus and history_service (with the csv test source) as real processes."""
    stack_env.env["TRADER_HISTORY__SOURCES__CSV"] = "tests.data.csv_source:CsvSource"
    stack = TradingStack(stack_env)
    try:
        stack.start("redis")
        stack.start("bus")
        wait_for_port(stack_env.redis_port, 15, "redis")
        stack.start("history_service")
        stack.wait_ready(stack.history_endpoint, "history_service", 30)
        yield stack
    finally:
        for name in list(stack.procs):
            stack.kill(name)
