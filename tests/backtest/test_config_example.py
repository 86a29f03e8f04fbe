"""The commented ``backtest:`` example in strategies/ma_crossover.yaml is a valid section, key for key."""

from __future__ import annotations

from pathlib import Path

import yaml

from trader.strategy.base import StrategyConfig

ROOT = Path(__file__).resolve().parents[2]


def test_the_commented_backtest_example_validates_when_uncommented() -> None:
    # it shows every key of BacktestSettings
    lines = (ROOT / "strategies" / "ma_crossover.yaml").read_text().splitlines()
    start = lines.index("# backtest:")
    section = [lines[start][2:]] + [line[2:] for line in lines[start + 1:] if line.startswith("#   ")]
    config = StrategyConfig.model_validate(yaml.safe_load("\n".join(section)))
    settings = config.backtest
    assert settings.slippage == settings.commission.stock_per_share / 10  # 0.0005
    assert settings.instruments == ["AAPL"] and settings.benchmark == "SPY" and settings.start is not None
    assert set(yaml.safe_load("\n".join(section))["backtest"]) == set(type(settings).model_fields)
