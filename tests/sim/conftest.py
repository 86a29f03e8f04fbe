"""Fixtures for the simulator's pure tests: a small catalogue, a manual clock, an engine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from trader.sim.catalogue import Catalogue, CommissionConfig, SimInstrument, load_sim_config
from trader.sim.engine import MatchingEngine
from trader.sim.orders import CommissionSchedule
from trader.sim.series import contract_conid

T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
"""The pure tests' fixed day: the catalogue's rolling series are listed as of it (ESZ6 is ES's front)."""
ESZ6 = contract_conid("ES", "FUT", "202612")
"""ESZ6's conid: derived from its symbol and contract month, the same on every day."""


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    return Catalogue.from_config(load_sim_config(), T0.date())


@pytest.fixture
def aapl(catalogue: Catalogue) -> SimInstrument:
    found = catalogue.get(265598)
    assert found is not None
    return found


@pytest.fixture
def es(catalogue: Catalogue) -> SimInstrument:
    return catalogue.front("ES", today=T0.date())


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def engine(clock: ManualClock) -> MatchingEngine:
    return MatchingEngine(clock, CommissionSchedule(CommissionConfig()), account="DU1234567")


def dec(text: str) -> Decimal:
    return Decimal(text)
