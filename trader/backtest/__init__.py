"""Research: backtests of the live strategy code, metrics, Monte Carlo, tear sheets, sweeps on Dask.

The high-level entry points (``backtest``, ``sweep``, ``walkforward``) live
in :mod:`trader.research`; this package holds the parts they are built of.
"""
