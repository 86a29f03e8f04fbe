"""Plugin texts: the strategies the strategy tests write to a plugin directory, each once.

``COUNTER`` trades nothing (a target of 0) and takes every tick: a strategy
whose only visible life is its state and its tick count (the restart and
starvation tests). ``HOLDER`` goes long at its first warm bar and stays long:
with a ``holder.yaml`` sizing it, a position to close, carry or mark.
"""

from __future__ import annotations

__all__ = ["COUNTER", "HOLDER", "counter"]

COUNTER = """
import pandas as pd
from trader.strategy import Strategy


class Counter(Strategy):
    instruments = ("AAPL",)
    warmup = 0

    def signals(self, prices):
        return pd.Series(0.0, index=prices.index)

    def on_tick(self, tick):
        pass
"""

HOLDER = """
import pandas as pd
from trader.strategy import Strategy

class Holder(Strategy):
    instruments = ("AAPL",)
    bar_size = "1s"
    warmup = 2

    def signals(self, prices):
        return pd.Series(1.0, index=prices.index)
"""


def counter(warmup: int = 0) -> str:
    """Return ``COUNTER`` warming up on ``warmup`` bars."""
    return COUNTER.replace("warmup = 0", f"warmup = {warmup}")
