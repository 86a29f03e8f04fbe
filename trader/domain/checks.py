"""Field checks for the domain records: coerce a value to its field's type or raise ValidationError.

Each check names the field in its message, so an error reads like
``Order.quantity must be > 0, got Decimal('-1')``. Booked money (quantities,
prices, costs) is ``Decimal``: a ``float`` is refused rather than converted,
because ``Decimal(0.1)`` is not ``Decimal("0.1")`` and the difference would be
booked silently. Convert at the edge with ``Decimal(str(x))``.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from enum import Enum
from numbers import Integral, Real
from typing import TypeVar

from trader.errors import ValidationError

E = TypeVar("E", bound=Enum)


def utc_now() -> datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.now(UTC)


def utc_datetime(name: str, value: object) -> datetime:
    """Return ``value`` as an aware UTC datetime; refuse naive datetimes and non-datetimes."""
    if not isinstance(value, datetime):
        raise ValidationError(f"{name} must be a datetime, got {type(value).__name__} {value!r}")
    tz = value.tzinfo
    if tz is UTC:
        return value
    if tz is None or value.utcoffset() is None:
        raise ValidationError(f"{name} must be timezone-aware (UTC), got naive {value!r}")
    return value.astimezone(UTC)


def plain_date(name: str, value: object) -> date:
    """Return ``value`` as a ``date``; accept ``YYYYMMDD`` or ``YYYY-MM-DD`` strings."""
    if isinstance(value, datetime):
        # A datetime is a date subclass, but a time of day on an expiry is a mistake.
        raise ValidationError(f"{name} must be a date, not a datetime: {value!r}")
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            if len(text) == 8 and text.isdigit():
                return date(int(text[:4]), int(text[4:6]), int(text[6:]))
            return date.fromisoformat(text)
        except ValueError:
            pass
        raise ValidationError(f"{name} must be a date or 'YYYYMMDD', got {value!r}")
    raise ValidationError(f"{name} must be a date, got {type(value).__name__} {value!r}")


def decimal(
    name: str,
    value: object,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> Decimal:
    """Return ``value`` as a finite ``Decimal``; accept a Decimal, an integer or a numeric string.

    ``positive`` requires ``> 0``, ``non_negative`` requires ``>= 0``.
    """
    if type(value) is Decimal:
        result = value
    elif isinstance(value, bool):
        raise ValidationError(f"{name} must be a Decimal, got bool {value!r}")
    elif isinstance(value, Decimal):
        result = Decimal(value)
    elif isinstance(value, Integral):
        result = Decimal(int(value))
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(f"{name} must be a decimal number, got {value!r}") from None
    elif isinstance(value, float):
        raise ValidationError(
            f"{name} must be a Decimal, got float {value!r}: use Decimal(str(x)) at the edge"
        )
    else:
        raise ValidationError(f"{name} must be a Decimal, got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise ValidationError(f"{name} must be finite, got {result!r}")
    if positive and not result > 0:
        raise ValidationError(f"{name} must be > 0, got {result!r}")
    if non_negative and result < 0:
        raise ValidationError(f"{name} must be >= 0, got {result!r}")
    return result


def optional_decimal(
    name: str,
    value: object,
    *,
    positive: bool = False,
    non_negative: bool = False,
) -> Decimal | None:
    """Like :func:`decimal`, but let ``None`` through."""
    if value is None:
        return None
    return decimal(name, value, positive=positive, non_negative=non_negative)


def enum_member(name: str, cls: type[E], value: object) -> E:
    """Return ``value`` as a member of ``cls``; accept the member's string value."""
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        raise ValidationError(f"{name} must be one of {allowed}; got {value!r}") from None


def optional_enum_member(name: str, cls: type[E], value: object) -> E | None:
    """Like :func:`enum_member`, but let ``None`` through."""
    return None if value is None else enum_member(name, cls, value)


def text(name: str, value: object, *, allow_empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-blank unless ``allow_empty``)."""
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    if not allow_empty and not value.strip():
        raise ValidationError(f"{name} must not be empty")
    return value


def optional_text(name: str, value: object) -> str | None:
    """Like :func:`text` (non-blank), but let ``None`` through."""
    return None if value is None else text(name, value)


def integer(name: str, value: object, *, positive: bool = False) -> int:
    """Return ``value`` as an int (numpy integers too, not bools); ``positive`` requires ``> 0``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValidationError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    result = int(value)
    if positive and result <= 0:
        raise ValidationError(f"{name} must be > 0, got {value!r}")
    return result


def optional_integer(name: str, value: object, *, positive: bool = False) -> int | None:
    """Like :func:`integer`, but let ``None`` through."""
    return None if value is None else integer(name, value, positive=positive)


def flag(name: str, value: object) -> bool:
    """Return ``value`` if it is a bool; refuse truthy stand-ins such as 1 or "yes"."""
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return value


def optional_float(name: str, value: object) -> float | None:
    """Return ``value`` as a float, or ``None``; for market data, where float is the type.

    Ints, numpy numbers and Decimals are converted; bools and strings are refused.
    """
    if value is None or type(value) is float:
        return value
    if isinstance(value, bool) or not isinstance(value, (Real, Decimal)):
        raise ValidationError(f"{name} must be a float, got {type(value).__name__} {value!r}")
    return float(value)
