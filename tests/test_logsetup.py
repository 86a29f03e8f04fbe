"""The logging setup: a per-service file (rotated) plus stderr, secrets masked everywhere."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from trader.config import Settings, validate
from trader.errors import ConfigError
from trader.logsetup import setup_logging


def test_secrets_are_masked_in_the_file_and_on_stderr(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    try:
        setup_logging("svc", tmp_path / "logs", "INFO", secrets=["hunter2", ""])
        log = logging.getLogger("trader.test")
        log.info("connecting with token %s to %s", "hunter2", "127.0.0.1")
        log.debug("below the level: %s", "hunter2")
        log.warning("plain message")
        # Setting up again replaces our handlers instead of adding more.
        setup_logging("svc", tmp_path / "logs", "INFO", secrets=["hunter2"])
        log.info("again hunter2")
        for handler in root.handlers:
            handler.flush()
        text = (tmp_path / "logs" / "svc.log").read_text()
        err = capsys.readouterr().err
        for output in (text, err):
            assert "hunter2" not in output
            assert "connecting with token *** to 127.0.0.1" in output
            assert "plain message" in output
            assert output.count("again ***") == 1
        assert "below the level" not in text
    finally:
        for handler in list(root.handlers):
            if getattr(handler, "_trader_handler", False):
                root.removeHandler(handler)
                handler.close()
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])


@pytest.fixture
def restore_root() -> Any:
    """Put the root logger's handlers and level back after the test."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    hooks = (sys.excepthook, threading.excepthook)
    yield root
    sys.excepthook, threading.excepthook = hooks
    for handler in list(root.handlers):
        if getattr(handler, "_trader_handler", False):
            root.removeHandler(handler)
            handler.close()
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_secrets_inside_tracebacks_and_stacks_are_masked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], restore_root: logging.Logger
) -> None:
    setup_logging("svc", tmp_path / "logs", "INFO", secrets=["hunter2"])
    log = logging.getLogger("trader.test")
    try:
        raise ConnectionError("AUTH hunter2 refused by 127.0.0.1:6379")
    except ConnectionError:
        log.exception("connect failed")
    try:
        password = "hunter2"  # shown in the traceback's source line
        raise ValueError(f"bad password {password!s}")
    except ValueError as exc:
        log.error("also as exc_info=", exc_info=exc)
    log.warning("where am I", stack_info=True)  # this file's source line names the secret below
    log.info("a line holding hunter2 in its stack frame", stack_info=True)
    for handler in restore_root.handlers:
        handler.flush()
    text = (tmp_path / "logs" / "svc.log").read_text()
    err = capsys.readouterr().err
    for output in (text, err):
        assert "hunter2" not in output
        assert "ConnectionError: AUTH *** refused by 127.0.0.1:6379" in output
        assert "ValueError: bad password ***" in output
        assert "Traceback (most recent call last)" in output
        assert "Stack (most recent call last)" in output


def test_the_log_file_rotates_by_size_and_keeps_so_many(tmp_path: Path, restore_root: logging.Logger) -> None:
    logs = tmp_path / "logs"
    setup_logging("svc", logs, "INFO", max_bytes=10_000, backups=2)
    for handler in restore_root.handlers:  # ours only: pytest's capture handlers are StreamHandlers too
        if getattr(handler, "_trader_handler", False) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL)  # keep stderr quiet: 2 MB of lines
    log = logging.getLogger("trader.test")
    for n in range(20_000):
        log.info("line %d %s", n, "x" * 80)
    files = sorted(p.name for p in logs.iterdir())
    assert files == ["svc.log", "svc.log.1", "svc.log.2"]
    assert all(p.stat().st_size <= 10_000 for p in logs.iterdir())
    assert "line 19999 " in (logs / "svc.log").read_text()


def test_settings_carry_the_rotation() -> None:
    assert validate(Settings, {"logging": {"max_bytes": 65536, "backups": 3}}, "t").logging.backups == 3
    with pytest.raises(ConfigError, match="logging.backups"):
        validate(Settings, {"logging": {"backups": 0}}, "t")


def test_an_uncaught_exception_is_logged_masked(tmp_path: Path) -> None:
    """A service that dies of an exception holding a secret: its traceback is masked on stderr and in the log."""
    script = (
        "import threading\n"
        "from pathlib import Path\n"
        "from trader.logsetup import setup_logging\n"
        f"setup_logging('svc', Path({str(tmp_path)!r}), 'INFO', secrets=['hunter2'])\n"
        "t = threading.Thread(target=lambda: 1 / 0 if False else (_ for _ in ()).throw(KeyError('hunter2 in a thread')))\n"
        "t.start(); t.join()\n"
        "raise RuntimeError('cannot AUTH with hunter2')\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 1
    text = (tmp_path / "svc.log").read_text()
    for output in (done.stderr, text):
        assert "hunter2" not in output
        assert "RuntimeError: cannot AUTH with ***" in output
        assert "KeyError: '*** in a thread'" in output


def test_a_bad_log_call_does_not_raise_into_the_caller_and_stays_masked(
    tmp_path: Path, restore_root: logging.Logger
) -> None:
    setup_logging("svc", tmp_path / "logs", "INFO", secrets=["hunter2"], stderr=False)
    record = logging.getLogger("trader.test").makeRecord(
        "trader.test", logging.INFO, __file__, 1, "value %d for %s", ("x", "hunter2"), None)
    for handler in restore_root.handlers:  # ours (pytest's own capture handlers re-raise format errors)
        if getattr(handler, "_trader_handler", False):
            handler.handle(record)  # the masker's getMessage raised TypeError into the caller before
            handler.flush()
    text = (tmp_path / "logs" / "svc.log").read_text()
    assert "unformattable log call: 'value %d for %s'" in text and "hunter2" not in text
