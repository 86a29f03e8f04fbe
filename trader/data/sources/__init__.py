"""Download sources for history_service: IB, Polygon, Yahoo, files (see :mod:`trader.data.sources.base`).

:data:`SOURCES` names each built-in source's module, imported only when a job
uses it (the IB source imports ib_async, the HTTP ones httpx). A module's
source is the class it names in ``module:Class``, else the one class defined
in it whose ``name`` is the source's name. ``history.sources`` in the
settings adds sources of one's own the same way (``vendor:
mypackage.vendor:VendorSource``): from the config file, never from a request.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from trader.errors import ConfigError, ValidationError

if TYPE_CHECKING:
    from trader.config import Settings
    from trader.data.sources.base import Source

__all__ = ["OPTIONS", "SOURCES", "check_options", "open_source", "options_help", "source_class", "source_names"]

SOURCES: Mapping[str, str] = {
    "ib": "trader.data.sources.ib",
    "polygon": "trader.data.sources.polygon",
    "yahoo": "trader.data.sources.yahoo",
    "file": "trader.data.sources.files",
}


OPTIONS: Mapping[str, Mapping[str, str]] = {
    "ib": {
        "use_rth": "true: regular trading hours only; default false",
        "what_to_show": "TRADES, MIDPOINT, BID or ASK; default TRADES, MIDPOINT for FX",
        "timeout": "seconds a request may take; default 60",
        "connect_timeout": "seconds to connect; default 15",
        "rules": "pacing limits tighter than IB's, e.g. {\"max_requests\": 30}; default IB's",
    },
    "polygon": {
        "adjusted": "split-adjusted prices; default true",
        "per_minute": "requests a minute the plan allows; default no limit",
        "max_retry_after": "longest Retry-After waited, seconds; default 60",
    },
    "yahoo": {
        "continuous": "true: a future's continuous series, ES=F; default false",
        "max_retry_after": "longest Retry-After waited, seconds; default 60",
    },
    "file": {
        "symbol": "the instrument of a file with no symbol column",
        "tz": "the zone of times with no UTC offset; default UTC",
        "path": "the file, as --file sets it",
    },
}
"""The options (``-o NAME=VALUE``) each built-in source takes, with what they do."""


def check_options(name: str, options: Mapping[str, Any] | None) -> None:
    """Raise ValidationError naming the valid options if ``options`` has one built-in source ``name`` lacks."""
    valid = OPTIONS.get(name)
    unknown = sorted(set(options or {}) - set(valid)) if valid is not None else []
    if unknown:
        raise ValidationError(f"source {name} has no option {', '.join(unknown)} "
                              f"(its options: {', '.join(valid or {})})", source=name, options=unknown)


def options_help() -> str:
    """Return each built-in source's options, a paragraph a source, for a command's help."""
    return "\n\n".join(f"{name}: " + ", ".join(f"{option} ({text})" for option, text in options.items()) + "."
                       for name, options in OPTIONS.items())


def _table(settings: Settings | None) -> dict[str, str]:
    extra = dict(settings.history.sources) if settings is not None else {}
    return {**SOURCES, **extra}


def source_names(settings: Settings | None = None) -> list[str]:
    """Return the source names a job may name: the built-in ones and ``history.sources``'s."""
    return sorted(_table(settings))


def check_source(name: str, settings: Settings | None = None) -> str:
    """Return ``name`` if it names a source; ValidationError listing the names otherwise."""
    if name not in _table(settings):
        raise ValidationError(f"unknown source {name!r} (one of {', '.join(source_names(settings))})", source=name)
    return name


def source_class(name: str, settings: Settings | None = None) -> type[Source]:
    """Return the class of source ``name``, importing its module now; ConfigError if it cannot be loaded."""
    spec = _table(settings).get(check_source(name, settings), "")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"source {name}: cannot import {module_name} ({exc})", source=name) from None
    if attr:
        found = getattr(module, attr, None)
        if not inspect.isclass(found):
            raise ConfigError(f"source {name}: {module_name} has no class {attr}", source=name)
        return cast("type[Source]", found)  # a class: its shape is checked when it is used
    classes = [obj for obj in vars(module).values()
               if inspect.isclass(obj) and obj.__module__ == module.__name__ and getattr(obj, "name", None) == name
               and hasattr(obj, "windows")]
    if len(classes) != 1:
        raise ConfigError(f"source {name}: {module_name} defines {len(classes)} classes named {name!r} "
                          "(name it as module:Class)", source=name)
    return cast("type[Source]", classes[0])  # a class with ``windows``


def open_source(name: str, settings: Settings, options: Mapping[str, Any] | None = None) -> Source:
    """Build source ``name`` with ``options`` (``SourceClass(settings, **options)``)."""
    check_options(name, options)
    cls = source_class(name, settings)
    try:
        return cls(settings, **dict(options or {}))  # type: ignore[call-arg]
    except TypeError as exc:  # an option the source does not take
        takes = [p.name for p in list(inspect.signature(cls).parameters.values())[1:]
                 if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
        said = f" (its options: {', '.join(takes)})" if takes else " (it takes no options)"
        raise ValidationError(f"source {name}: {exc}{said}", source=name) from None
