"""The one logging setup: a per-service log file (rotated) plus stderr, with secrets masked."""

from __future__ import annotations

import logging
import logging.handlers
import os
import sys
import threading
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"
MAX_BYTES = 20 * 1024 * 1024  # a log file's size before it is rotated (settings: logging.max_bytes)
BACKUPS = 5  # rotated files kept beside it: <name>.1 (newest) to <name>.5 (settings: logging.backups)
_EXCEPTIONS = logging.Formatter()  # renders a traceback as every handler's formatter would
SUPERVISED_ENV = "PYCRON_JOB"  # set by pycron in each job's environment: the job's name


class SecretMasker(logging.Filter):
    """Replace every known secret value in a record's message, traceback and stack with ``***``.

    The traceback is rendered here (and kept as the record's ``exc_text``,
    which formatters print instead of rendering it again), so a secret inside
    an exception's message or a frame's source line is masked as well.
    """

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def mask(self, text: str) -> str:
        """Return ``text`` with every secret replaced by ``***``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a bad format call: logged as written (masked), and the caller goes on
            message = f"unformattable log call: {record.msg!r} % {record.args!r}"
            record.msg, record.args = message, None
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            record.exc_text = _EXCEPTIONS.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


def setup_logging(
    service: str,
    logs_dir: Path | None = None,
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
    *,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
    stderr: bool | int = True,
) -> None:
    """Send the root logger to stderr and to ``<logs_dir>/<service>.log``.

    ``stderr`` is True (every record), False (none, if there is a file) or a
    level: only records at that level or above, which is how a job of pycron
    logs (see ``supervised_stderr``).

    The file is rotated once it reaches ``max_bytes``, keeping ``backups``
    older files (``<service>.log.1`` the newest). An uncaught exception (of
    the main thread or another) is logged too, so its traceback goes through
    the masker instead of straight to stderr. Calling it again replaces the
    handlers it installed, so a service can set up early (stderr only) and
    again once its config is known.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_trader_handler", False):
            root.removeHandler(handler)
            handler.close()
    masker = SecretMasker(secrets)
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = []
    if stderr is not False or logs_dir is None:
        console = logging.StreamHandler(sys.stderr)
        if stderr is not True and stderr is not False:
            console.setLevel(stderr)
        handlers.append(console)
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.handlers.RotatingFileHandler(
            logs_dir / f"{service}.log", maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    for handler in handlers:
        handler._trader_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        handler.addFilter(masker)
        root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
    sys.excepthook = log_uncaught
    threading.excepthook = _log_uncaught_in_thread


def log_uncaught(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
    """Log an uncaught exception (``sys.excepthook``): its traceback is masked like any log line."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, tb)
        return
    logging.getLogger("uncaught").critical("uncaught exception", exc_info=(kind, exc, tb))


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    logging.getLogger("uncaught").critical(
        "uncaught exception in thread %s", args.thread.name if args.thread else "?",
        exc_info=(args.exc_type, args.exc_value or args.exc_type(), args.exc_traceback))


def supervised_stderr() -> bool | int:
    """Return what a service logs to stderr: everything, or under pycron ERROR and above only.

    pycron reads a job's stderr through a pipe into ``logs/<job>.out``; the
    service's own ``logs/<service>.log`` already holds every line. Logging each
    line to the pipe too would tie the service's loop to pycron's (a log call
    blocks once the pipe is full and pycron's loop stalls), so under pycron
    only errors go there (the start-up failures ``trader up`` shows, uncaught
    tracebacks), besides what is written before logging is set up. The std
    streams are also guarded (``LostReaderGuard``): if pycron dies, a stray
    write is dropped instead of raising BrokenPipeError in the service.
    """
    if not os.environ.get(SUPERVISED_ENV):
        return True
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, LostReaderGuard):
            setattr(sys, name, LostReaderGuard(stream))
    return logging.ERROR


class LostReaderGuard:
    """Wrap a std stream so that, once its pipe's reader is gone, writes go to /dev/null.

    A Python process ignores SIGPIPE (the interpreter sets SIG_IGN), so a
    write to a pipe nobody reads raises BrokenPipeError in whatever code
    printed, and again at exit. Here the first one points the descriptor at
    /dev/null and the write is dropped; every later write succeeds quietly.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        """Write ``text``; drop it if the reader is gone."""
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._to_devnull()
            return len(text)

    def flush(self) -> None:
        """Flush; drop what is pending if the reader is gone."""
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._to_devnull()

    def _to_devnull(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())
        finally:
            os.close(devnull)
        try:
            self._stream.flush()  # what the failed write left buffered goes to /dev/null
        except OSError:
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)
