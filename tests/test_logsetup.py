"""The logging setup: a per-service file plus stderr, secrets masked everywhere."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

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
