"""The CLI's JSON: values made JSON-ready, Decimals written as exact JSON numbers, errors as JSON.

A quantity, price or amount is a ``Decimal`` in the platform and a JSON
*number* in ``--json`` output, written with the Decimal's own digits
(``231.52``, ``0.00001``, ``10``): never through a binary float, so nothing
is rounded on the way out. A reader that wants every digit parses numbers as
decimals (Python: ``json.loads(text, parse_float=Decimal)``); a reader that
uses doubles gets the nearest double, as for any JSON number. The one value
no JSON number can hold, a non-finite Decimal or float (NaN, infinity), is
``null``. Strings are never used for numbers.

:func:`to_jsonable` marks a Decimal's text as :class:`Number`, a ``str``:
plain ``json.dumps`` still writes valid JSON (the number quoted), while
:func:`dumps` writes it bare.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time
from decimal import Decimal
from enum import Enum
from typing import Any

from trader.domain import Contract

JSON_FLAG = "--json"


class Number(str):
    """A number's exact decimal text; :func:`dumps` writes it unquoted, as a JSON number."""

    __slots__ = ()


def to_jsonable(value: Any) -> Any:
    """Return ``value`` in JSON types: Decimal -> :class:`Number`, datetime -> ISO, dataclass -> dict."""
    if value is None or isinstance(value, Number):
        return value
    if isinstance(value, Enum):
        return to_jsonable(value.value)
    if isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):  # market data (a tick's sizes and prices): 321.0 is written 321, as a quantity is
        if not math.isfinite(value):
            return None
        return int(value) if value.is_integer() else value
    if isinstance(value, Decimal):
        return Number(format(value, "f")) if value.is_finite() else None
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        data = {f.name: to_jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, Contract):
            data["key"] = value.key
        return data
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return str(value)


def dumps(value: Any, *, indent: int | None = 2) -> str:
    """Return ``value`` (made JSON-ready first) as JSON text; ``indent=None``: one compact line."""
    return _encode(to_jsonable(value), indent, 0)


def _encode(value: Any, indent: int | None, depth: int) -> str:
    if isinstance(value, Number):
        return str.__str__(value)
    if isinstance(value, dict):
        items = [f"{json.dumps(str(k))}{': ' if indent else ':'}{_encode(v, indent, depth + 1)}"
                 for k, v in value.items()]
        return _join(items, "{", "}", indent, depth)
    if isinstance(value, list):
        return _join([_encode(v, indent, depth + 1) for v in value], "[", "]", indent, depth)
    return json.dumps(value, allow_nan=False)


def _join(items: list[str], opening: str, closing: str, indent: int | None, depth: int) -> str:
    if not items:
        return opening + closing
    if indent is None:
        return opening + ",".join(items) + closing
    inner, outer = "\n" + " " * (indent * (depth + 1)), "\n" + " " * (indent * depth)
    return opening + inner + ("," + inner).join(items) + outer + closing


def error_document(error: Mapping[str, Any]) -> str:
    """Return the JSON a command prints on stderr when it fails in JSON mode: ``{"error": error}`` on one line.

    ``error`` is an error's wire form (``TraderError.to_wire``): type, code,
    message and, when the error has any, details.
    """
    return dumps({"error": error}, indent=None)


def json_requested(words: Sequence[str]) -> bool:
    """Return whether a command line asks for JSON: ``--json`` among its words before ``--``."""
    words = list(words)
    return JSON_FLAG in (words[: words.index("--")] if "--" in words else words)
