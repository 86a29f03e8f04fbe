"""Fixtures of the source tests: the local provider server and settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.data.sources.providers import API_KEY, ProviderServer
from trader.config import HistorySettings, Settings


@pytest.fixture
def provider() -> Iterator[ProviderServer]:
    """Serve Polygon's and Yahoo's formats on 127.0.0.1 for one test."""
    server = ProviderServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings(provider: ProviderServer) -> Settings:
    """Return settings whose Polygon and Yahoo URLs are the local server's, with a test API key."""
    return Settings(history=HistorySettings(polygon_url=provider.url, yahoo_url=provider.url,
                                            polygon_api_key=API_KEY, http_timeout=5.0))
