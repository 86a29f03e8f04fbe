"""Plugin discovery: good plugins load with their configs; each broken one is reported by file, line and reason."""

from __future__ import annotations

import gc
import sys
import textwrap
import tracemalloc
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from trader.strategy.plugins import discover

GOOD = '''
import pandas as pd
from pydantic import BaseModel
from trader.strategy import Strategy


class Params(BaseModel):
    lookback: int = 5


class Good(Strategy):
    name = "good"
    instruments = ("AAPL",)
    bar_size = "5s"
    warmup = 5
    Params = Params

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return pd.Series(0.0, index=prices.index)
'''


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def errors_by_file(directory: Path) -> dict[str, tuple[int | None, str]]:
    _, errors = discover(directory)
    return {e.file.name: (e.line, e.reason) for e in errors}


def test_a_good_plugin_loads_with_the_config_beside_it(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "good.yaml", "instruments: [MSFT, ES]\nbar_size: 1m\nparams:\n  lookback: 20\n")
    write(tmp_path, "_helpers.py", "raise RuntimeError('never imported')\n")
    plugins, errors = discover(tmp_path)
    assert errors == []
    [plugin] = plugins
    s = plugin.strategy
    assert (plugin.name, s.instruments, s.bar_size, s.warmup, s.params.lookback) == ("good", ("MSFT", "ES"), "1m", 5, 20)
    assert plugin.config_file == tmp_path / "good.yaml"


def test_toml_configs_work_too(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "good.toml", 'name = "renamed"\nenabled = false\n[params]\nlookback = 7\n')
    [plugin], errors = discover(tmp_path)
    assert errors == [] and plugin.name == "renamed" and not plugin.strategy.config.enabled
    assert plugin.strategy.params.lookback == 7


def test_broken_plugins_are_reported_and_the_good_ones_still_load(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "syntax.py", "import pandas\n\ndef broken(:\n    pass\n")
    write(tmp_path, "raises.py", "import os\n\nx = 1\nraise ValueError('no API key')\n")
    write(tmp_path, "empty.py", "X = 1\n")
    write(tmp_path, "two.py", GOOD + "\n\nclass Other(Good):\n    name = 'other'\n")
    write(tmp_path, "badparams.py", GOOD.replace('"good"', '"badparams"'))
    write(tmp_path, "badparams.yaml", "instruments: [AAPL]\nparams:\n  lookback: many\n")
    write(tmp_path, "badkey.py", GOOD.replace('"good"', '"badkey"'))
    write(tmp_path, "badkey.yaml", "instruments: [AAPL]\n\nbar_size: 7m\n")
    write(tmp_path, "badyaml.py", GOOD.replace('"good"', '"badyaml"'))
    write(tmp_path, "badyaml.yaml", "instruments: [AAPL\n")
    write(tmp_path, "noinst.py", GOOD.replace('"good"', '"noinst"').replace('instruments = ("AAPL",)', ""))
    write(tmp_path, "dupe.py", GOOD)
    plugins, errors = discover(tmp_path)
    assert [p.name for p in plugins] == ["good"]
    found = {e.file.name: (e.line, e.reason) for e in errors}
    assert found["syntax.py"][0] == 3 and "syntax error" in found["syntax.py"][1]
    assert found["raises.py"] == (4, "ValueError: no API key")
    assert found["empty.py"] == (None, "defines no Strategy subclass")
    assert "defines 2 strategies (Good, Other)" in found["two.py"][1]
    assert found["badparams.yaml"][0] == 3 and "params.lookback" in found["badparams.yaml"][1]
    assert found["badkey.yaml"][0] == 3 and "bar_size" in found["badkey.yaml"][1]
    assert found["badyaml.yaml"][1].startswith("invalid YAML")
    assert "no instruments" in found["noinst.py"][1]
    assert "already taken by dupe.py" in found["good.py"][1] or "already taken by good.py" in found["dupe.py"][1]
    assert all(str(e).startswith(str(tmp_path)) for e in errors)


def test_unknown_config_keys_are_named(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "good.yaml", "instruments: [AAPL]\nsizing:\n  kind: quantity\n  valeu: 100\n")
    assert errors_by_file(tmp_path)["good.yaml"] == (4, "sizing.valeu: unknown key")


def test_reloading_picks_up_edits(tmp_path: Path) -> None:
    path = write(tmp_path, "good.py", GOOD)
    [first], _ = discover(tmp_path)
    path.write_text(textwrap.dedent(GOOD).replace("lookback: int = 5", "lookback: int = 9"))
    [second], _ = discover(tmp_path)
    assert first.strategy.params.lookback == 5 and second.strategy.params.lookback == 9


@pytest.mark.parametrize("missing", ["nowhere"])
def test_a_missing_directory_is_an_error_not_a_crash(tmp_path: Path, missing: str) -> None:
    plugins, errors = discover(tmp_path / missing)
    assert plugins == [] and "not found" in errors[0].reason


def test_the_repository_strategies_all_load() -> None:
    plugins, errors = discover(Path(__file__).resolve().parents[2] / "strategies")
    assert errors == []
    assert {"ma_crossover"} <= {p.name for p in plugins}


def test_fifty_reloads_do_not_grow_memory() -> None:
    """Each reload kept its plugin modules in sys.modules (~110 KB); now the old generation is freed."""
    from trader.strategy.runner import StrategyRunner

    directory = Path(__file__).resolve().parents[2] / "strategies"

    async def no_equity() -> None:
        return None

    def reload() -> None:
        plugins, errors = discover(directory)
        assert plugins and not errors
        for plugin in plugins:  # as strategy_service's reload does: a runner per plugin, closed on the next
            StrategyRunner(plugin, lambda *a, **k: None, lambda topic, payload: None,  # type: ignore[arg-type]
                           equity=no_equity).close()

    for _ in range(5):  # first imports, caches and dict resizes
        reload()
    gc.collect()
    modules = len(sys.modules)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(50):
            reload()
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert grown < 256 * 1024, f"50 reloads kept {grown / 1024:.0f} KiB"
    assert len(sys.modules) == modules


FORWARD = '''
from __future__ import annotations

import typing

import pandas as pd
from pydantic import BaseModel
from trader.strategy import Strategy


class Params(BaseModel):
    window: Window  # defined below: resolved through sys.modules[Params.__module__] once it is used


class Window(BaseModel):
    bars: int = 5


class Forward(Strategy):
    instruments = ("AAPL",)
    Params = Params

    def signals(self, prices: pd.DataFrame) -> pd.Series:
        return pd.Series(float(self.params.window.bars), index=prices.index)

    def hints(self) -> dict[str, typing.Any]:
        return typing.get_type_hints(type(self).signals)
'''


def test_a_plugin_module_stays_importable_while_its_strategy_is_loaded(tmp_path: Path) -> None:
    from trader.strategy.runner import StrategyRunner

    write(tmp_path, "forward.py", FORWARD)
    write(tmp_path, "forward.yaml", "params: {window: {bars: 7}}\n")
    [plugin], errors = discover(tmp_path)
    assert errors == []
    strategy: Any = plugin.strategy
    assert strategy.params.window.bars == 7  # pydantic resolved the forward reference through sys.modules
    assert strategy.hints()["return"] is pd.Series  # and so does typing.get_type_hints, later
    module = type(strategy).__module__
    assert sys.modules[module].__file__ == str(tmp_path / "forward.py")

    async def no_equity() -> None:
        return None

    [again], _ = discover(tmp_path)  # a reload: the new generation is registered beside the old until it goes
    StrategyRunner(plugin, lambda *a, **k: None, lambda topic, payload: None,  # type: ignore[arg-type]
                   equity=no_equity).close()
    assert module not in sys.modules and type(again.strategy).__module__ in sys.modules
    StrategyRunner(again, lambda *a, **k: None, lambda topic, payload: None,  # type: ignore[arg-type]
                   equity=no_equity).close()
    assert type(again.strategy).__module__ not in sys.modules


def test_a_plugin_that_fails_after_its_import_leaves_no_module_behind(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD)
    write(tmp_path, "twin.py", GOOD)  # the same strategy name: refused
    write(tmp_path, "nostrategy.py", "X = 1\n")
    before = {m for m in sys.modules if m.startswith("_trader_plugin_")}
    plugins, errors = discover(tmp_path)
    assert len(plugins) == 1 and len(errors) == 2
    after = {m for m in sys.modules if m.startswith("_trader_plugin_")} - before
    assert after == {type(plugins[0].strategy).__module__}
    plugins[0].unload()
    assert type(plugins[0].strategy).__module__ not in sys.modules
