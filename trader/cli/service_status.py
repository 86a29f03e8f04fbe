"""The services' own status in ``trader status``: each asked at once, its answer (or why none) as its table.

``trader status`` asks trader_service, strategy_service, and the data
layer's tick_recorder (its counts) and history_service (its queue, from its
``jobs``). Each call waits at most STATUS_TIMEOUT; history_service's
``status`` and ``jobs`` go together, then ``job`` when its running job is not
listed (two timeouts at worst). A service that does not answer, has no RPC
port, or answers something that cannot be shown is shown as such: no
service's answer fails the command.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rich.table import Table

from trader.cli import data_tables, service_tables
from trader.cli.context import CliContext
from trader.errors import ConfigError, TraderError, Unavailable

log = logging.getLogger(__name__)

STATUS_TIMEOUT = 2.0  # a service's status, shown when it answers
# The services whose own status `trader status` shows, each as its table.
SERVICE_TABLES: dict[str, Callable[[Mapping[str, Any]], Table]] = {
    "trader_service": service_tables.service_table,
    "strategy_service": service_tables.strategy_service_table,
    "history_service": data_tables.history_table,
    "tick_recorder": data_tables.recorder_table,
}
# Shown even when not run by the profile: the data layer, whose absence an operator should see.
ALWAYS_SHOWN = ("history_service", "tick_recorder")


@dataclass(frozen=True)
class Answer:
    """A service's ``status``, or why there is none (``down: ...``, ``not configured: ...``)."""

    status: dict[str, Any] | None
    error: str = ""


def show_services(cli: CliContext, answers: Mapping[str, Answer], *, unanswered: bool) -> None:
    """Print each service's status table, in SERVICE_TABLES's order; with ``unanswered``, also why one has none.

    A status its table cannot show is shown as that service's error: the
    other tables still follow.
    """
    for name, table in SERVICE_TABLES.items():
        answer = answers.get(name)
        if answer is not None and answer.status is not None:
            try:
                cli.console.print(table(answer.status))
            except Exception as exc:
                log.debug("cannot show the status of %s", name, exc_info=True)
                cli.console.print(data_tables.unanswered_table(name, f"error: cannot show its status ({exc!r})"))
        elif answer is not None and unanswered:
            cli.console.print(data_tables.unanswered_table(name, answer.error, down=answer.error.startswith("down")))


async def ask_services(cli: CliContext, names: list[str]) -> dict[str, Answer]:
    """Ask every service of ``names`` for its status at once; return each one's answer."""
    answers = await asyncio.gather(*(ask(cli, name) for name in names))
    return dict(zip(names, answers, strict=True))


async def ask(cli: CliContext, name: str) -> Answer:
    """Return service ``name``'s status (history_service's with its queue), or why it has none.

    Never raises an Exception: whatever one service answers (or fails with)
    becomes its Answer, so it cannot fail ``trader status``.
    """
    try:
        endpoint = cli.endpoint(name)
    except ConfigError:
        return Answer(None, f"not configured: no services.{name}.rpc_port")
    try:
        if name == "history_service":
            return Answer(await _history_status(cli, name))
        return Answer(_mapping("status", await cli.call_service_async(name, "status", timeout=STATUS_TIMEOUT)))
    except Unavailable:
        return Answer(None, f"down: no answer at {endpoint}")
    except TraderError as exc:
        return Answer(None, f"error: {exc}")
    except Exception as exc:  # a malformed answer, or a failure of the client: this service's error only
        log.debug("status of %s failed", name, exc_info=True)
        return Answer(None, f"error: {exc!r}")


async def _history_status(cli: CliContext, name: str) -> dict[str, Any]:
    """Return history_service's ``status`` with its ``queue`` (asked at once), and the running job if not listed.

    Once ``status`` answered, the service is up: a ``jobs`` or ``job`` call
    that fails (a malformed answer, the running job pruned) leaves what is
    not known of the queue None (``queue``, or its ``running``) and says why
    in ``queue_error``.
    """
    answers: list[Any] = list(await asyncio.gather(
        cli.call_service_async(name, "status", timeout=STATUS_TIMEOUT),
        cli.call_service_async(name, "jobs", limit=data_tables.QUEUE_LIMIT, timeout=STATUS_TIMEOUT),
        return_exceptions=True))
    told, listed = answers
    for answer in (told, listed):
        if isinstance(answer, BaseException) and not isinstance(answer, Exception):
            raise answer  # cancelled: not the service's doing
    if isinstance(told, BaseException):
        raise told
    found = _mapping("status", told)
    found["queue"] = None
    try:
        if isinstance(listed, BaseException):
            raise listed
        queue = data_tables.queue_summary(listed, found.get("job"))
    except Exception as exc:  # noqa: BLE001 - status answered: the service is up, its queue unknown
        found["queue_error"] = f"jobs: {_why(exc)}"
        return found
    found["queue"] = queue
    if found.get("job") and queue["running"] is None:  # older than the newest jobs listed
        try:
            job = _mapping("job", await cli.call_service_async(name, "job", found["job"], timeout=STATUS_TIMEOUT))
            queue["running"] = {k: v for k, v in job.items() if k != "instruments"}
        except Exception as exc:  # noqa: BLE001 - the job pruned, or malformed: the rest stands
            found["queue_error"] = f"job {found['job']}: {_why(exc)}"
    return found


def _mapping(method: str, answer: Any) -> dict[str, Any]:
    """Return ``answer`` as a dict, or raise TypeError if ``method`` answered something else."""
    if not isinstance(answer, Mapping):
        raise TypeError(f"{method} answered a {type(answer).__name__}, not a mapping")
    return dict(answer)


def _why(exc: Exception) -> str:
    """Return ``exc`` as ``Type: message``."""
    return f"{type(exc).__name__}: {exc}"
