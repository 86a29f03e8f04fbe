"""Monte Carlo risk: the result of a simulation and the figures read off its paths.

:func:`trader.backtest.montecarlo.simulate` builds a :class:`MonteCarloResult`;
the tear sheet, the CLI and notebooks read it. The class lives here, not in
:mod:`trader.backtest.result` (which re-exports it), so the simulation can
build one without importing the module that imports it. Nothing here needs
numba.

Conventions: equity is a multiple of the start (1.0 = unchanged); a loss or
a drawdown is a positive fraction (0.12 = 12 % lost); quantiles are numpy's
``linear`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["FAN_QUANTILES", "RISK_LEVELS", "MonteCarloResult", "fan_frame", "risk_figures"]

FAN_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
RISK_LEVELS = (95, 99)


@dataclass
class MonteCarloResult:
    """Bootstrapped paths of a strategy's returns: the distributions and the risk figures read off them.

    ``final_equity`` and ``max_drawdown`` hold one value per path (equity as a
    multiple of the start: 1.0 = unchanged; drawdown as a positive fraction).
    ``fan`` is steps x quantiles (columns 0.05, 0.25, 0.5, 0.75, 0.95) of the
    equity paths: row 0 is the start (all 1.0), then one row per day (index
    named ``day``) or, for the ``trades`` method, per trade (``trade``).
    ``risk`` maps ``var_95``, ``cvar_95``, ``var_99``, ``cvar_99`` (losses
    over the horizon, positive fractions) and more: see :func:`risk_figures`.
    """

    method: str  # "iid", "block", "stationary" or "trades"
    paths: int
    horizon_days: int
    seed: int
    final_equity: np.ndarray
    max_drawdown: np.ndarray
    fan: pd.DataFrame
    risk: dict[str, float]


def risk_figures(final_equity: np.ndarray, max_drawdown: np.ndarray) -> dict[str, float]:
    """Return VaR/CVaR at 95 and 99 % of the return over the horizon and the distributions' headline figures.

    ``var_95`` is the loss exceeded by 5 % of the paths (the 95 % quantile of
    ``1 - final_equity``), ``cvar_95`` the mean loss of the paths at or beyond
    it (expected shortfall), both positive fractions; a negative VaR means
    even that tail ends with a gain. Then ``mean_return``, ``median_return``,
    ``probability_of_loss`` (share of paths ending below the start),
    ``final_equity_5``/``_95`` (quantiles of the final equity) and
    ``max_drawdown_median``/``_95``/``_99`` (quantiles of the max drawdown).
    """
    loss = 1.0 - final_equity
    figures: dict[str, float] = {}
    for level in RISK_LEVELS:
        var = float(np.quantile(loss, level / 100))
        figures[f"var_{level}"] = var
        figures[f"cvar_{level}"] = float(loss[loss >= var].mean())
    figures.update({
        "mean_return": float(final_equity.mean() - 1.0),
        "median_return": float(np.median(final_equity) - 1.0),
        "probability_of_loss": float((final_equity < 1.0).mean()),
        "final_equity_5": float(np.quantile(final_equity, 0.05)),
        "final_equity_95": float(np.quantile(final_equity, 0.95)),
        "max_drawdown_median": float(np.median(max_drawdown)),
        "max_drawdown_95": float(np.quantile(max_drawdown, 0.95)),
        "max_drawdown_99": float(np.quantile(max_drawdown, 0.99)),
    })
    return figures


def fan_frame(fan: np.ndarray, axis: str = "day", quantiles: tuple[float, ...] = FAN_QUANTILES) -> pd.DataFrame:
    """Return a steps x quantiles fan array as the frame :class:`MonteCarloResult` holds (index named ``axis``)."""
    return pd.DataFrame(fan, columns=list(quantiles), index=pd.RangeIndex(fan.shape[0], name=axis))
