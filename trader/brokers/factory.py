"""Broker selection: the settings' ``broker`` name to the implementation that trades through it.

The table is explicit and each entry imports its implementation only when
chosen, so a profile that trades through one broker never loads another's
library. Adding a broker is one entry here (see docs/ARCHITECTURE.md,
"Adding a broker").
"""

from __future__ import annotations

from collections.abc import Callable

from trader.brokers.base import Broker
from trader.config import Settings
from trader.errors import ConfigError

__all__ = ["BROKERS", "create_broker"]


def _ib(settings: Settings) -> Broker:
    from trader.brokers.ib.adapter import IbAdapter  # only when chosen: ib_async is IB's library

    return IbAdapter(settings.ib, settings.trading)


BROKERS: dict[str, Callable[[Settings], Broker]] = {
    "ib": _ib,
}


def create_broker(settings: Settings) -> Broker:
    """Return the broker ``settings.broker`` names, not yet connected; ConfigError for an unknown name."""
    try:
        factory = BROKERS[settings.broker]
    except KeyError:
        raise ConfigError(f"broker: unknown broker {settings.broker!r} (one of {', '.join(sorted(BROKERS))})",
                          broker=settings.broker) from None
    return factory(settings)
