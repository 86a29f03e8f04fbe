"""`history get -o NAME=VALUE`: each source's options listed in the help and named when one is unknown."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from tests.cli.invoke import ok, refused
from trader.config import load_settings
from trader.data.sources import OPTIONS, open_source, source_class
from trader.errors import ValidationError


def test_the_help_lists_each_source_s_options(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    out = ok("history", "get", "--help").stdout
    for name in ("use_rth", "what_to_show", "adjusted", "per_minute", "continuous", "symbol", "tz"):
        assert f"{name} (" in " ".join(out.split()), name
    assert all(len(line) <= 80 for line in out.splitlines())


def test_an_unknown_option_is_refused_naming_the_valid_ones() -> None:
    message = refused(3, "history", "get", "AAPL", "--start", "2026-01-01", "-o", "use_rt=true")
    assert "source ib has no option use_rt (its options: use_rth, what_to_show" in message
    message = refused(3, "history", "get", "AAPL", "--start", "2026-01-01", "-s", "yahoo", "-o", "adjusted=false")
    assert "its options: continuous" in message
    with pytest.raises(ValidationError, match="its options: symbol, tz, path"):
        open_source("file", load_settings(), {"path": "x.csv", "zone": "UTC"})


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_the_listed_options_are_what_each_source_takes(name: str, tmp_path: Path) -> None:
    takes = {p.name for p in inspect.signature(source_class(name)).parameters.values() if p.kind is p.KEYWORD_ONLY}
    assert set(OPTIONS[name]) <= takes
