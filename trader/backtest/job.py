"""A research job's inputs: the strategy plugin found by name, its backtest settings, the overrides on top.

:func:`prepare` is what ``trader backtest|sweep|walkforward`` and
:mod:`trader.research` share before any bar is read:

- the plugin is found as strategy_service finds it
  (:func:`trader.strategy.plugins.discover` over ``strategies.directory``):
  by its strategy name, not its file name. A plugin that did not load is a
  ValidationError carrying ``file:line: reason``; an unknown name is NotFound
  listing the names there are.
- its config's ``backtest:`` section is the base; ``start``, ``end``,
  ``instruments`` and ``data`` given for the run replace it.
- an override ``key=value`` (``--set``, or a keyword of the Python
  functions) is read by one rule, :func:`split_overrides`: a name the
  strategy's ``Params`` declares is a parameter; else a name
  :class:`BacktestSettings` declares (dotted for a nested one:
  ``commission.stock_min``) is a setting; ``params.NAME`` and
  ``backtest.NAME`` say which explicitly (a name both declare is the
  parameter unless written ``backtest.NAME``). Any other name is a
  ValidationError naming it and the names there are.
- the strategy is built again with the overridden parameters, validated by
  its ``Params`` as live (a bad value is a ValidationError naming the key).

A ``data:`` file in the config resolves against the config file's directory;
one given for the run (``--data``) against the current directory.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pydantic
import yaml

from trader.backtest.settings import BacktestSettings, with_overrides
from trader.config import Settings, load_settings
from trader.errors import NotFound, ValidationError
from trader.strategy.base import Strategy
from trader.strategy.plugins import Plugin, discover

__all__ = ["Job", "find_plugin", "parse_assignments", "prepare", "split_overrides", "strategies_directory"]

PARAM_PREFIX = "params."
SETTING_PREFIX = "backtest."


@dataclass(frozen=True)
class Job:
    """What a run needs besides its bars: the strategy (parameters in), its settings, where they came from."""

    strategy: Strategy
    settings: BacktestSettings
    params: dict[str, Any]  # the strategy's parameters, every one (defaults included)
    platform: Settings
    plugin: Plugin  # where it came from: module_file, config_file

    @property
    def name(self) -> str:
        """Return the strategy's name."""
        return self.strategy.name

    @property
    def instruments(self) -> list[str]:
        """Return the instruments of the run: the settings', else the strategy's."""
        return list(self.settings.instruments or self.strategy.instruments)

    @property
    def bar_size(self) -> str:
        """Return the bar size of the run: the settings', else the strategy's."""
        return self.settings.bar_size or self.strategy.bar_size

    def close(self) -> None:
        """Unload the plugin's module (once the run is done with the strategy); safe to call twice."""
        self.plugin.unload()


def strategies_directory(platform: Settings) -> Path:
    """Return the strategies directory strategy_service loads (``strategies.directory``, against the home)."""
    return platform.path(platform.strategies.directory)


def find_plugin(name: str, directory: Path) -> Plugin:
    """Return the plugin whose strategy is called ``name`` in ``directory`` (the others are unloaded).

    Raise ValidationError (``file:line: reason``) if the plugin of that name,
    or the file ``<name>.py``, did not load; NotFound if no plugin has that
    name or ``directory`` is missing.
    """
    plugins, errors = discover(directory)
    found = None
    for plugin in plugins:
        if plugin.name == name and found is None:
            found = plugin
        else:
            plugin.unload()
    if found is not None:
        return found
    for error in errors:
        if error.file == directory:  # the directory itself: missing
            raise NotFound(f"no strategy {name}: {error}", strategy=name, directory=str(directory))
        if error.file.stem == name:
            raise ValidationError(f"strategy {name} did not load: {error}", file=str(error.file),
                                  line=error.line, reason=error.reason)
    names = ", ".join(p.name for p in plugins) or "none"
    raise NotFound(f"no strategy {name} in {directory} (there are: {names})", strategy=name,
                   directory=str(directory))


def parse_assignments(words: Sequence[str]) -> dict[str, Any]:
    """Return ``key=value`` words (``--set``) as a mapping; a value is read as a YAML scalar or flow list.

    ``5`` is an int, ``true`` a bool, ``[AAPL, MSFT]`` a list; a number with a
    fraction stays text (``0.001``) so that a Decimal setting gets its exact digits.
    """
    out: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValidationError(f"--set {word!r}: expected KEY=VALUE (e.g. fast=5, slippage=0.0005)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else raw
        except yaml.YAMLError:
            value = raw
        if isinstance(value, float) or (isinstance(value, (dict, list)) and not raw.lstrip().startswith(("[", "{"))):
            value = raw.strip()
        out[key] = value
    return out


def split_overrides(params_model: type[pydantic.BaseModel],
                    overrides: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return ``overrides`` split into (strategy parameters, backtest settings) by the module's rule.

    Raise ValidationError naming every key that is neither.
    """
    params: dict[str, Any] = {}
    settings: dict[str, Any] = {}
    unknown: list[str] = []
    declared = params_model.model_fields
    for key, value in overrides.items():
        if key.startswith(PARAM_PREFIX):
            target, name = params, key.removeprefix(PARAM_PREFIX)
            known = name in declared
        elif key.startswith(SETTING_PREFIX):
            target, name = settings, key.removeprefix(SETTING_PREFIX)
            known = _is_setting(name)
        elif key in declared:
            target, name, known = params, key, True
        else:
            target, name, known = settings, key, _is_setting(key)
        if not known:
            unknown.append(key)
        target[name] = value
    if unknown:
        names = ", ".join(sorted(unknown))
        raise ValidationError(
            f"unknown parameter or setting: {names} (parameters: {', '.join(declared) or 'none'}; "
            f"settings: {', '.join(BacktestSettings.model_fields)})", unknown=sorted(unknown))
    return params, settings


def _is_setting(key: str) -> bool:
    """Return whether a dotted ``key`` names a field of BacktestSettings (or of a model inside it)."""
    model: Any = BacktestSettings
    for part in key.split("."):
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return False
        model = fields[part].annotation
    return True


def prepare(
    name: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    instruments: Sequence[str] | None = None,
    data: str | Path | None = None,
    params: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | BacktestSettings | None = None,
    overrides: Mapping[str, Any] | None = None,
    directory: str | Path | None = None,
    platform: Settings | None = None,
) -> Job:
    """Return the job of strategy ``name``: its plugin, its config's backtest section and every override.

    ``settings`` replaces the config's ``backtest:`` section (a BacktestSettings)
    or is applied over it (a mapping, dotted keys allowed); ``params`` are
    strategy parameters; ``overrides`` are split by :func:`split_overrides`.
    ``directory`` defaults to the platform's ``strategies.directory``.
    """
    platform = platform or load_settings()
    folder = Path(directory) if directory is not None else strategies_directory(platform)
    plugin = find_plugin(name, folder)
    strategy = plugin.strategy
    try:
        extra_params, extra_settings = split_overrides(strategy.Params, overrides or {})
        base = settings if isinstance(settings, BacktestSettings) else strategy.config.backtest
        if base.data is not None and not base.data.is_absolute() and plugin.config_file is not None:
            base = base.model_copy(update={"data": plugin.config_file.parent / base.data})
        changes: dict[str, Any] = dict(settings or {}) if isinstance(settings, Mapping) else {}
        changes.update(extra_settings)
        run_changes = {"start": start, "end": end, "instruments": list(instruments) if instruments else None,
                       "data": Path(data).resolve() if data is not None else None}
        changes.update({k: v for k, v in run_changes.items() if v is not None})
        chosen = _validated("backtest", lambda: with_overrides(base, changes))
        merged = {**strategy.config.params, **(params or {}), **extra_params}
        config = strategy.config.model_copy(update={"params": merged, "backtest": chosen})
        built = _validated("params", lambda: type(strategy)(config, name=strategy.name))
    except BaseException:
        plugin.unload()
        raise
    return Job(built, chosen, built.params.model_dump(), platform, plugin)


def _validated(section: str, build: Any) -> Any:
    """Return ``build()``; a pydantic error becomes one ValidationError naming each bad key in ``section``."""
    try:
        return build()
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join([section, *(str(p) for p in err["loc"])])
            problems.append(f"{where}: unknown key" if err["type"] == "extra_forbidden" else f"{where}: {err['msg']}")
        raise ValidationError("; ".join(problems), problems=problems) from None
