"""Strategy log lines: captured live for ``strategy logs``, and read back from the log file after a restart.

A runner keeps its strategy's last lines in a :class:`LogCapture` (a handler
on the strategy's logger that also publishes each line on the bus as
``strategy.<name>.log``); a reload hands them to the new runner.
Every line a strategy logs (its ``strategy.<name>`` logger) also goes to the
service's log file, in trader.logsetup's format (local time, level, logger,
pid, message; a traceback on the lines after). At its start the service
reads the end of that file (:data:`TAIL_BYTES` at most, not the rotated
files) and gives each strategy its last lines back, as the log capture keeps
them: ``{"time", "level", "message"}``, the time in UTC with the file's
millisecond precision.
"""

from __future__ import annotations

import logging
import os
import re
import traceback
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

__all__ = ["TAIL_BYTES", "LogCapture", "read_strategy_lines"]

TAIL_BYTES = 4 * 1024 * 1024
PREFIX = "strategy."
# trader.logsetup.FORMAT: "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"
_RECORD = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ([A-Z]+) +(\S+) \[\d+\] (.*)$")


class LogCapture(logging.Handler):
    """Keeps a strategy's log lines for ``strategy logs`` and publishes each on the bus (``publish("log", line)``)."""

    def __init__(self, publish: Callable[[str, Any], None], maxlen: int) -> None:
        super().__init__(logging.DEBUG)
        self.lines: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.publish = publish

    def emit(self, record: logging.LogRecord) -> None:
        line: dict[str, Any] = {"time": datetime.fromtimestamp(record.created, UTC), "level": record.levelname,
                "message": record.getMessage()}
        if record.exc_info:
            line["message"] += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        self.lines.append(line)
        self.publish("log", line)


def read_strategy_lines(path: Path, maxlen: int) -> dict[str, deque[dict[str, Any]]]:
    """Return the last ``maxlen`` log lines of each strategy found at the end of the log file ``path``.

    A missing or unreadable file gives nothing (logged): the history is a
    convenience, never a reason not to start.
    """
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            file.seek(max(0, size - TAIL_BYTES))
            data = file.read()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        log.warning("cannot read the strategies' past log lines from %s: %s", path, exc)
        return {}
    lines = data.decode("utf-8", errors="replace").splitlines()
    if size > TAIL_BYTES and lines:
        lines = lines[1:]  # the first is cut
    found: dict[str, deque[dict[str, Any]]] = {}
    current: dict[str, Any] | None = None  # the record that continuation lines (a traceback) belong to
    for line in lines:
        match = _RECORD.match(line)
        if match is None:
            if current is not None:
                current["message"] += "\n" + line
            continue
        stamp, level, logger, message = match.groups()
        if not logger.startswith(PREFIX):
            current = None
            continue
        try:
            when = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").astimezone(UTC)  # the file's local time
        except ValueError:
            current = None
            continue
        current = {"time": when, "level": level, "message": message}
        found.setdefault(logger[len(PREFIX):], deque(maxlen=maxlen)).append(current)
    return found
