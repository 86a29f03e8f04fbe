"""The one logging setup: a per-service log file plus stderr, with secrets masked."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(process)d] %(message)s"


class SecretMasker(logging.Filter):
    """Replace every known secret value in a record's rendered message with ``***``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = message
        for secret in self.secrets:
            masked = masked.replace(secret, "***")
        if masked != message:
            record.msg, record.args = masked, None
        return True


def setup_logging(
    service: str,
    logs_dir: Path | None = None,
    level: str | int = "INFO",
    secrets: Iterable[str] = (),
) -> None:
    """Send the root logger to stderr and, if ``logs_dir`` is given, to ``<logs_dir>/<service>.log``.

    Calling it again replaces the handlers it installed, so a service can set
    up early (stderr only) and again once its config is known.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_trader_handler", False):
            root.removeHandler(handler)
            handler.close()
    masker = SecretMasker(secrets)
    formatter = logging.Formatter(FORMAT)
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logs_dir is not None:
        logs_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logs_dir / f"{service}.log", encoding="utf-8"))
    for handler in handlers:
        handler._trader_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(formatter)
        handler.addFilter(masker)
        root.addHandler(handler)
    root.setLevel(level if isinstance(level, int) else level.upper())
