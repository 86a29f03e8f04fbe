"""Fixtures for pycron tests: settings on a temp home whose bus port nothing listens on."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from pycron_helpers import make_settings

from trader.config import Settings


@pytest.fixture
def pycron_settings(trader_home: Path, free_port: Callable[[], int]) -> Settings:
    """Settings rooted at the test's home, with private bus ports (no stray bus is ever heard)."""
    return make_settings(trader_home, bus={"pub_port": free_port(), "sub_port": free_port()})
