"""A backtest's settings: the ``backtest:`` section of a strategy's config file, overridable per run.

Everything a run needs beyond the strategy itself: the range and instruments
(by default the strategy's own), where the bars come from (the market store,
or a CSV/Parquet file), the initial cash, a benchmark, the commission
schedule (tws-sim's, so a backtest is charged what a replay through tws-sim
is), slippage and the Monte Carlo simulations. :func:`with_overrides` applies
the command line's ``--start``/``--set key=value`` on top, validated again.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from trader.config import StrictModel
from trader.domain.commission import CommissionConfig

__all__ = ["BacktestSettings", "with_overrides"]


class BacktestSettings(StrictModel):
    """A strategy's ``backtest:`` section; every key optional."""

    start: datetime | None = Field(None, description="first bar (UTC; a date is its midnight); default: the first stored")
    end: datetime | None = Field(None, description="end of the range, exclusive; default: the last stored bar")
    instruments: list[str] | None = Field(None, min_length=1, description="default: the strategy's instruments")
    bar_size: str | None = Field(None, description="default: the strategy's bar size")
    data: Path | None = Field(None, description="a CSV or Parquet file of bars instead of the market store")
    initial_cash: Decimal = Field(Decimal(100_000), gt=0)
    benchmark: str | None = Field(None, description="a symbol or contract key whose bars are the benchmark")
    commission: CommissionConfig = CommissionConfig()
    slippage: Decimal = Field(Decimal(0), ge=0, lt=1, description="fraction of the price paid on every fill, "
                              "against the trader (0.0005 = 5 bp)")
    simulations: int = Field(1000, ge=0, le=1_000_000, description="Monte Carlo paths (0: none)")
    horizon_days: int = Field(252, ge=1, le=25_200, description="Monte Carlo horizon, trading days")
    block_days: int = Field(5, ge=1, le=252, description="block length of the block bootstrap, days")
    seed: int = Field(0, ge=0, description="Monte Carlo seed: the same seed, the same paths")
    risk_free: float = Field(0.0, ge=-1, le=1, description="annual risk-free rate for Sharpe and Sortino")

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _end_after_start(self) -> BacktestSettings:
        if self.start is not None and self.end is not None and self.end <= self.start:
            raise ValueError(f"end ({self.end:%Y-%m-%d %H:%M}) must be after start ({self.start:%Y-%m-%d %H:%M})")
        return self


def with_overrides(settings: BacktestSettings, overrides: dict[str, Any]) -> BacktestSettings:
    """Return ``settings`` with ``overrides`` (dotted keys allowed: ``commission.stock_min``) validated in."""
    data = settings.model_dump(exclude_unset=False)
    for key, value in overrides.items():
        if value is None:
            continue
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return BacktestSettings.model_validate(data)
