"""A parameter space: the ``--param`` ranges of a sweep, checked against the strategy's ``Params`` model.

One ``--param`` per parameter:

- ``fast=2:20`` an integer range, both ends included, step 1;
- ``slow=10:100:5`` with a step; ``entry=0.001:0.005:0.001`` a float range
  (a float in any of the three numbers makes it one; the values are rounded
  to the step's decimals, so 0.003 is 0.003 and not 0.0030000000000000005);
- ``allow_short=true,false`` a list (``true``/``false`` are booleans, numbers
  are numbers, anything else a string); ``fast=5`` a single value.

:func:`parse_space` refuses, with a :class:`~trader.errors.ValidationError`
naming the parameter, a name the ``Params`` model does not have, an empty
range (``20:2``), a step that is zero, negative or not a number, and a value
the field itself refuses (``fast=0:5`` where ``fast`` must be >= 1). A
combination the model refuses as a whole (``fast >= slow``) is not an error:
:meth:`ParamSpace.check` tells it apart, and the sweep drops and counts it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

import pydantic
from pydantic import BaseModel, TypeAdapter

from trader.errors import ValidationError

__all__ = ["Dimension", "ParamSpace", "parse_space"]

_MAX_VALUES = 1_000_000  # values of one dimension: a typo in a step (0.00001) should not hang the parser
_WORDS = {"true": True, "false": False}


@dataclass(frozen=True)
class Dimension:
    """One parameter's values: ``kind`` is ``int`` or ``float`` for a stepped range, ``list`` otherwise."""

    name: str
    kind: str
    values: tuple[Any, ...]
    step: float | int | None = None

    @property
    def low(self) -> Any:
        """Return the first value."""
        return self.values[0]

    @property
    def high(self) -> Any:
        """Return the last value."""
        return self.values[-1]


@dataclass(frozen=True)
class ParamSpace:
    """The dimensions of a sweep over a ``Params`` model, in the order given."""

    model: type[BaseModel]
    dimensions: tuple[Dimension, ...]
    base: dict[str, Any]  # the strategy's own params (config), under every combination

    @property
    def names(self) -> list[str]:
        """Return the swept parameters' names."""
        return [d.name for d in self.dimensions]

    @property
    def size(self) -> int:
        """Return the number of combinations of the full grid (valid or not)."""
        return math.prod(len(d.values) for d in self.dimensions)

    def as_dict(self) -> dict[str, list[Any]]:
        """Return name -> values (JSON-ready; the SweepResult's ``space``)."""
        return {d.name: list(d.values) for d in self.dimensions}

    def grid(self) -> Iterator[dict[str, Any]]:
        """Yield every combination of the grid, the last dimension varying fastest."""
        for values in itertools.product(*(d.values for d in self.dimensions)):
            yield dict(zip(self.names, values, strict=True))

    def check(self, combo: dict[str, Any]) -> str | None:
        """Return why the ``Params`` model refuses ``combo`` (over the base params), or None if it takes it."""
        try:
            self.model.model_validate({**self.base, **combo})
        except pydantic.ValidationError as exc:
            return "; ".join(_reason(err) for err in exc.errors())
        return None

    def valid_grid(self) -> tuple[list[dict[str, Any]], int]:
        """Return the grid's combinations the model takes, and how many it refused."""
        kept: list[dict[str, Any]] = []
        dropped = 0
        for combo in self.grid():
            if self.check(combo) is None:
                kept.append(combo)
            else:
                dropped += 1
        return kept, dropped


def parse_space(specs: Sequence[str], model: type[BaseModel], base: dict[str, Any] | None = None) -> ParamSpace:
    """Return the space of ``specs`` (``name=low:high[:step]`` or ``name=a,b,c``) over ``model``'s fields."""
    if not specs:
        raise ValidationError("no parameter to sweep: give at least one --param NAME=RANGE")
    fields = model.model_fields
    dimensions: list[Dimension] = []
    for spec in specs:
        name, sep, text = spec.partition("=")
        name = name.strip()
        if not sep or not name or not text.strip():
            raise ValidationError(f"--param {spec!r}: expected NAME=LOW:HIGH[:STEP] or NAME=A,B,C")
        if name not in fields:
            known = ", ".join(fields) or "none"
            raise ValidationError(f"--param {name}: {model.__name__} has no parameter {name!r} (it has: {known})")
        if any(d.name == name for d in dimensions):
            raise ValidationError(f"--param {name}: given twice")
        dimension = _parse_values(name, text.strip())
        dimensions.append(_check_field(model, name, dimension))
    return ParamSpace(model, tuple(dimensions), dict(base or {}))


def _parse_values(name: str, text: str) -> Dimension:
    if ":" in text:
        return _parse_range(name, text)
    values = tuple(_scalar(part.strip()) for part in text.split(","))
    if any(part == "" for part in values):
        raise ValidationError(f"--param {name}={text}: an empty value in the list")
    if len(set(map(repr, values))) != len(values):
        raise ValidationError(f"--param {name}={text}: a value is listed twice")
    return Dimension(name, "list", values)


def _parse_range(name: str, text: str) -> Dimension:
    parts = [part.strip() for part in text.split(":")]
    if len(parts) not in (2, 3):
        raise ValidationError(f"--param {name}={text}: a range is LOW:HIGH or LOW:HIGH:STEP")
    try:
        numbers = [Decimal(part) for part in parts]
    except InvalidOperation:
        raise ValidationError(f"--param {name}={text}: the range's bounds and step must be numbers") from None
    if not all(n.is_finite() for n in numbers):
        raise ValidationError(f"--param {name}={text}: the range's bounds and step must be finite")
    is_float = any(not _is_integer_text(part) for part in parts)
    low, high = numbers[0], numbers[1]
    step = numbers[2] if len(numbers) == 3 else Decimal(1)
    if step <= 0:
        raise ValidationError(f"--param {name}={text}: the step must be positive, got {parts[2]}")
    if high < low:
        raise ValidationError(f"--param {name}={text}: the range is empty (high {parts[1]} < low {parts[0]})")
    count = int((high - low) / step) + 1
    if count > _MAX_VALUES:
        raise ValidationError(f"--param {name}={text}: {count} values, more than {_MAX_VALUES}; use a larger step")
    decimals = [low + step * i for i in range(count)]  # exact: 0.001 + 0.001 * 2 is 0.003
    if is_float:
        return Dimension(name, "float", tuple(float(v) for v in decimals), float(step))
    return Dimension(name, "int", tuple(int(v) for v in decimals), int(step))


def _is_integer_text(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def _scalar(text: str) -> Any:
    lowered = text.lower()
    if lowered in _WORDS:
        return _WORDS[lowered]
    if _is_integer_text(text):
        return int(text)
    try:
        value = float(text)
    except ValueError:
        return text
    return value if math.isfinite(value) else text


def _check_field(model: type[BaseModel], name: str, dimension: Dimension) -> Dimension:
    """Return ``dimension`` with its values as the field takes them; raise ValidationError if it refuses one."""
    field = model.model_fields[name]
    hint: Any = Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation
    adapter: TypeAdapter[Any] = TypeAdapter(hint)
    values = []
    for value in dimension.values:
        try:
            values.append(adapter.validate_python(value, strict=isinstance(value, bool)))
        except pydantic.ValidationError as exc:
            reason = "; ".join(err["msg"] for err in exc.errors())
            raise ValidationError(f"--param {name}: the value {value!r} is refused: {reason}") from None
    return Dimension(name, dimension.kind, tuple(values), dimension.step)


def _reason(err: Any) -> str:
    where = ".".join(str(part) for part in err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
