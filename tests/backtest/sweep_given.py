"""What the sweep and walk-forward tests are given: bars, the real ma_crossover plugin, plugin texts."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import numpy as np
import pandas as pd

from trader.strategy.plugins import Plugin, load_plugin

REPO = Path(__file__).resolve().parents[2]

# A constant target (side) whose signals may take a while (delay seconds): the kill test's slow chunks.
SIDE_PLUGIN = dedent('''
    """A test strategy: hold ``side`` (-1, 0 or 1) all along; signals sleep ``delay`` seconds."""

    import time

    import pandas as pd
    from pydantic import BaseModel, ConfigDict, Field

    from trader.strategy import Strategy


    class SideParams(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        side: int = Field(1, ge=-1, le=1)
        lag: int = Field(0, ge=0)
        delay: float = Field(0.0, ge=0)


    class Side(Strategy):
        name = "side"
        instruments = ("AAPL",)
        bar_size = "1m"
        Params = SideParams

        def signals(self, prices: pd.DataFrame) -> pd.Series:
            time.sleep(self.params.delay)
            target = pd.Series(float(self.params.side), index=prices.index)
            target.iloc[:self.params.lag] = 0.0
            return target
''')

RAISING_PLUGIN = dedent('''
    """A test strategy whose signals raise for fast == 3."""

    import pandas as pd
    from pydantic import BaseModel, ConfigDict

    from trader.strategy import Strategy


    class BoomParams(BaseModel):
        model_config = ConfigDict(extra="forbid", frozen=True)
        fast: int = 2


    class Boom(Strategy):
        name = "boom"
        instruments = ("AAPL",)
        bar_size = "1m"
        Params = BoomParams

        def signals(self, prices: pd.DataFrame) -> pd.Series:
            if self.params.fast == 3:
                raise RuntimeError("boom at fast 3")
            return pd.Series(1.0, index=prices.index)
''')


def random_bars(n: int, seed: int = 1) -> pd.DataFrame:
    """Return ``n`` one-minute bars of a random walk."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, n)))
    index = pd.date_range("2026-01-05 14:30", periods=n, freq="1min", tz="UTC")
    opens = np.concatenate([[close[0]], close[:-1]]) * (1 + rng.normal(0, 0.0003, n))
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close) * 1.001,
                         "low": np.minimum(opens, close) * 0.999, "close": close, "volume": 1000.0}, index=index)


def path_bars(close: np.ndarray, freq: str = "1min") -> pd.DataFrame:
    """Return bars whose close is ``close`` and whose open is the previous close."""
    index = pd.date_range("2026-01-05 14:30", periods=len(close), freq=freq, tz="UTC")
    opens = np.concatenate([[close[0]], close[:-1]])
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, close), "low": np.minimum(opens, close),
                         "close": close, "volume": 1000.0}, index=index)


def ma_crossover() -> Plugin:
    """Return the repository's ma_crossover plugin, loaded as the strategy service loads it."""
    return load_plugin(REPO / "strategies" / "ma_crossover.py")


def plugin(tmp_path: Path, text: str, stem: str, config: str = "") -> Plugin:
    """Write ``text`` (and ``config`` as its YAML) under ``tmp_path`` and load it as a plugin."""
    (tmp_path / f"{stem}.py").write_text(text)
    if config:
        (tmp_path / f"{stem}.yaml").write_text(config)
    return load_plugin(tmp_path / f"{stem}.py")
