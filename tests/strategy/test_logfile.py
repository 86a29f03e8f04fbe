"""Strategies' past log lines read back from strategy_service's log file, as trader.logsetup writes it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from trader.logsetup import FORMAT
from trader.strategy import logfile
from trader.strategy.logfile import read_strategy_lines


def write(path: Path, records: list[tuple[str, int, str, bool]]) -> None:
    """Log ``records`` (logger, level, message, with a traceback) into ``path`` through logsetup's format."""
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter(FORMAT))
    for name, level, message, failed in records:
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        try:
            if failed:
                try:
                    raise ZeroDivisionError("boom")
                except ZeroDivisionError:
                    logger.exception(message)
            else:
                logger.log(level, message)
        finally:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)
            logger.propagate = True
    handler.close()


def test_each_strategy_gets_its_lines_back_tracebacks_included(tmp_path: Path) -> None:
    path = tmp_path / "strategy_service.log"
    write(path, [("strategy.alpha", logging.INFO, "RUNNING", False),
                 ("services.strategy_service", logging.WARNING, "not a strategy's", False),
                 ("strategy.beta", logging.ERROR, "signals raised", True),
                 ("strategy.alpha", logging.INFO, "fill BUY 10 AAPL.STK @ 231.28 (alpha.1)", False),
                 ("strategy.alpha", logging.INFO, "three", False)])
    found = read_strategy_lines(path, maxlen=2)
    assert sorted(found) == ["alpha", "beta"]
    assert [line["message"] for line in found["alpha"]] == ["fill BUY 10 AAPL.STK @ 231.28 (alpha.1)", "three"]
    [beta] = found["beta"]
    assert beta["level"] == "ERROR" and beta["message"].startswith("signals raised\nTraceback")
    assert beta["message"].endswith("ZeroDivisionError: boom")
    assert abs((datetime.now(UTC) - beta["time"]).total_seconds()) < 60 and beta["time"].tzinfo is UTC


def test_only_the_end_of_a_long_file_is_read_and_a_missing_one_gives_nothing(tmp_path: Path,
                                                                            monkeypatch: object) -> None:
    path = tmp_path / "strategy_service.log"
    write(path, [("strategy.alpha", logging.INFO, f"line {i}", False) for i in range(50)])
    monkeypatch.setattr(logfile, "TAIL_BYTES", 500)  # type: ignore[attr-defined]
    lines = [line["message"] for line in read_strategy_lines(path, maxlen=100)["alpha"]]
    assert lines[-1] == "line 49" and 0 < len(lines) < 50 and all(m.startswith("line ") for m in lines)
    assert read_strategy_lines(tmp_path / "none.log", maxlen=10) == {}
