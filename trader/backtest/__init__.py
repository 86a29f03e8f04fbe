"""Research: backtests of the live strategy code, metrics, Monte Carlo, tear sheets, sweeps on Dask.

The high-level entry points (``backtest``, ``sweep``, ``walkforward``) live
in :mod:`trader.research`; this package holds the parts they are built of.
"""

from trader.backtest.numba_cache import use_numba_cache

use_numba_cache()  # before any module of this package imports numba
