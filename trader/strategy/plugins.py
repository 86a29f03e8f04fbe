"""Strategy plugins: discover strategies/*.py, load the config beside each, report what is broken.

A plugin is a Python file in the strategies directory (names starting with
``_`` are skipped: shared helpers) defining one :class:`Strategy` subclass,
with its settings in ``<stem>.yaml``, ``<stem>.yml`` or ``<stem>.toml`` beside
it (optional: without one the class's declarations apply). Every file is
imported afresh on each discovery, so ``strategy reload`` picks up edits.
Each import is a module of its own generation (``_trader_plugin_<stem>_<n>``),
registered in ``sys.modules`` while its strategy is loaded: pydantic and
``typing.get_type_hints`` resolve the plugin's names through
``sys.modules[cls.__module__]`` long after its body ran (a ``Params`` with a
forward reference is completed at its first use). :meth:`Plugin.unload` (the
runner's ``close``, on reload or stop) takes it out again, and a plugin that
fails after its import is taken out at once, so reloads do not accumulate
modules.

A plugin that fails (a syntax error, an exception at import, no or several
strategy classes, a config that does not validate, parameters its ``Params``
refuses, no instruments, a name taken by another plugin) becomes a
:class:`PluginError` carrying the file, the line where that can be known
(the failing line of the module, or the line of the bad key in the config)
and the reason. The other plugins load regardless.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import tomllib
import traceback
from dataclasses import dataclass
from itertools import count
from pathlib import Path
from typing import Any

import pydantic
import yaml

from trader.strategy.base import Strategy, StrategyConfig

__all__ = ["Plugin", "PluginError", "discover", "load_plugin"]

CONFIG_SUFFIXES = (".yaml", ".yml", ".toml")
_generation = count(1)


@dataclass(frozen=True, slots=True)
class PluginError:
    """Why one plugin did not load: ``file:line: reason``."""

    file: Path
    line: int | None
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}" if self.line else f"{self.file}: {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": str(self.file), "line": self.line, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class Plugin:
    """A loaded plugin: a ready strategy instance and where it came from."""

    strategy: Strategy
    module_file: Path
    config_file: Path | None

    @property
    def name(self) -> str:
        return self.strategy.name

    def unload(self) -> None:
        """Take the plugin's module out of ``sys.modules`` (once its strategy is done with); safe to call twice."""
        _forget(type(self.strategy).__module__)


class _Failed(Exception):
    def __init__(self, error: PluginError) -> None:
        super().__init__(str(error))
        self.error = error


def discover(directory: Path) -> tuple[list[Plugin], list[PluginError]]:
    """Load every plugin in ``directory``; return the good ones (by name order) and the errors."""
    plugins: list[Plugin] = []
    errors: list[PluginError] = []
    if not directory.is_dir():
        return plugins, [PluginError(directory, None, "strategies directory not found")]
    names: dict[str, Path] = {}
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        try:
            plugin = load_plugin(path)
        except _Failed as failed:
            errors.append(failed.error)
            continue
        if plugin.name in names:
            plugin.unload()
            errors.append(PluginError(path, None, f"strategy name {plugin.name!r} is already taken by {names[plugin.name].name}"))
            continue
        names[plugin.name] = path
        plugins.append(plugin)
    return sorted(plugins, key=lambda p: p.name), errors


def load_plugin(path: Path) -> Plugin:
    """Import ``path``, find its strategy class, validate its config and build it (or raise _Failed).

    The plugin's module stays in ``sys.modules`` until :meth:`Plugin.unload`; on failure it is taken out.
    """
    module = _import(path)
    try:
        return _build(path, module)
    except BaseException:
        _forget(module.__name__)
        raise


def _build(path: Path, module: Any) -> Plugin:
    classes = [c for _, c in inspect.getmembers(module, inspect.isclass)
               if issubclass(c, Strategy) and c is not Strategy and c.__module__ == module.__name__
               and not c.__name__.startswith("_") and not inspect.isabstract(c)]
    if not classes:
        raise _Failed(PluginError(path, None, "defines no Strategy subclass"))
    if len(classes) > 1:
        names = ", ".join(sorted(c.__name__ for c in classes))
        raise _Failed(PluginError(path, None, f"defines {len(classes)} strategies ({names}); a plugin file defines one"))
    cls = classes[0]
    config_file = next((p for p in (path.with_suffix(s) for s in CONFIG_SUFFIXES) if p.exists()), None)
    data, text = _read_config(config_file) if config_file else ({}, "")
    try:
        config = StrategyConfig.model_validate(data)
    except pydantic.ValidationError as exc:
        raise _Failed(_config_error(config_file or path, text, exc, ())) from None
    try:
        strategy = cls(config, name=cls.name or path.stem)
    except pydantic.ValidationError as exc:
        raise _Failed(_config_error(config_file or path, text, exc, ("params",))) from None
    except Exception as exc:  # noqa: BLE001 - a plugin constructor may raise anything
        raise _Failed(_traceback_error(path, exc)) from None
    if not strategy.instruments:
        raise _Failed(PluginError(config_file or path, None,
                                  f"no instruments: declare them on {cls.__name__} or in {path.stem}.yaml"))
    if cls.signals is Strategy.signals and cls.pipeline is Strategy.pipeline:
        raise _Failed(PluginError(path, _line_of(cls), f"{cls.__name__} implements neither signals() nor pipeline()"))
    return Plugin(strategy, path, config_file)


def _import(path: Path) -> Any:
    name = f"_trader_plugin_{path.stem}_{next(_generation)}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise _Failed(PluginError(path, None, "cannot be imported"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pydantic look their module up, while the body runs and after
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        sys.modules.pop(name, None)
        raise _Failed(PluginError(path, exc.lineno, f"syntax error: {exc.msg}")) from None
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _Failed(_traceback_error(path, exc)) from None
    return module


def _forget(name: str) -> None:
    """Take a plugin generation's module out of ``sys.modules`` (a reload's old one is then freed with it)."""
    if name.startswith("_trader_plugin_"):
        sys.modules.pop(name, None)


def _traceback_error(path: Path, exc: BaseException) -> PluginError:
    line = None
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == path.resolve():
            line = frame.lineno  # the deepest line of the plugin itself
    return PluginError(path, line, f"{type(exc).__name__}: {exc}")


def _line_of(obj: Any) -> int | None:
    try:
        return inspect.getsourcelines(obj)[1]
    except (OSError, TypeError):
        return None


def _read_config(path: Path) -> tuple[dict[str, Any], str]:
    text = path.read_text()
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise _Failed(PluginError(path, mark.line + 1 if mark else None, f"invalid YAML: {exc}")) from None
    except tomllib.TOMLDecodeError as exc:
        raise _Failed(PluginError(path, None, f"invalid TOML: {exc}")) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise _Failed(PluginError(path, 1, f"expected a mapping at the top level, got {type(data).__name__}"))
    return data, text


def _config_error(path: Path, text: str, exc: pydantic.ValidationError, prefix: tuple[str, ...]) -> PluginError:
    problems = []
    first_line = None
    for err in exc.errors():
        loc = prefix + tuple(str(p) for p in err["loc"])
        where = ".".join(loc) or "<root>"
        problems.append(f"{where}: unknown key" if err["type"] == "extra_forbidden" else f"{where}: {err['msg']}")
        if first_line is None:
            first_line = _key_line(path, text, loc)
    return PluginError(path, first_line, "; ".join(problems))


def _key_line(path: Path, text: str, loc: tuple[str, ...]) -> int | None:
    """Return the 1-based line of the deepest key of ``loc`` found in the config text."""
    if not text:
        return None
    if path.suffix == ".toml":
        for key in reversed(loc):
            for number, row in enumerate(text.splitlines(), 1):
                if row.strip().startswith((f"{key} ", f"{key}=")):
                    return number
        return None
    try:
        node = yaml.compose(text)
    except yaml.YAMLError:
        return None
    line = None
    for key in loc:
        if isinstance(node, yaml.MappingNode):
            match = next(((k, v) for k, v in node.value if k.value == key), None)
            if match is None:
                break
            line, node = match[0].start_mark.line + 1, match[1]
        elif isinstance(node, yaml.SequenceNode) and key.isdigit() and int(key) < len(node.value):
            node = node.value[int(key)]
            line = node.start_mark.line + 1
        else:
            break
    return line
