"""IbAdapter without I/O: its settings reach the ib_async client it owns."""

from __future__ import annotations

from trader.brokers.ib.adapter import IbAdapter
from trader.config import IbSettings, TradingSettings


def test_request_pacing_comes_from_the_trading_settings() -> None:
    paced = IbAdapter(IbSettings(), TradingSettings())
    assert (paced.ib.client.MaxRequests, paced.ib.client.RequestsInterval) == (45, 1.0)  # ib_async's own
    unpaced = IbAdapter(IbSettings(), TradingSettings(ib_max_requests=0, ib_requests_interval=2.0))
    assert (unpaced.ib.client.MaxRequests, unpaced.ib.client.RequestsInterval) == (0, 2.0)
