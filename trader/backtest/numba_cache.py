"""Where numba keeps compiled code: one directory per user, set before any research module imports numba.

``NUMBA_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/trader/numba``
(``~/.cache/trader/numba``), rather than ``__pycache__`` inside the
installed packages (read-only, or shared by several checkouts) and not under
``TRADER_HOME``, which tests and profiles make afresh. The package
:mod:`trader.backtest` calls :func:`use_numba_cache` when it is imported, so
every process (the CLI, a notebook, a Dask worker, a test) caches in the
same place and a fresh process loads machine code instead of compiling it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

__all__ = ["NUMBA_CACHE_ENV", "numba_cache_dir", "use_numba_cache"]

NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def numba_cache_dir(env: Mapping[str, str] | None = None) -> Path:
    """Return where numba caches compiled code: ``NUMBA_CACHE_DIR``, else the user's cache directory's trader/numba."""
    env = os.environ if env is None else env
    if env.get(NUMBA_CACHE_ENV):
        return Path(env[NUMBA_CACHE_ENV])
    base = Path(env["XDG_CACHE_HOME"]) if env.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "trader" / "numba"


def use_numba_cache() -> None:
    """Point numba's cache at :func:`numba_cache_dir` (also for a numba already imported, from now on)."""
    path = numba_cache_dir()
    os.environ.setdefault(NUMBA_CACHE_ENV, str(path))  # Dask workers and child processes inherit it
    if "numba" in sys.modules:
        from numba.core import config

        config.CACHE_DIR = str(path)  # type: ignore[attr-defined]  # numba.core.config sets its names at run time
