"""The platform's exception hierarchy: one code per error type, shared by RPC and the CLI.

Every error a service can answer with is a ``TraderError`` subclass. Its ``code``
travels in the RPC reply (``{ok: false, error: {type, message, code}}``) and is
turned back into the same class on the caller's side by :func:`error_from_wire`;
its ``exit_code`` is what the CLI exits with. The table is explicit: a class
is known to the wire only if it is listed in ``_BY_CODE`` below.

Exit code 2 is click's (and argparse's) for bad command-line usage and no
error here takes it: a configuration error exits 78, ``EX_CONFIG`` of BSD's
sysexits.h, so a script or pycron can tell a typo in a command from a bad file.
"""

from __future__ import annotations

from typing import Any


class TraderError(Exception):
    """Base of every error the platform raises on purpose."""

    code: str = "internal"
    exit_code: int = 1

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def __str__(self) -> str:
        return self.message or self.code

    def to_wire(self) -> dict[str, Any]:
        """Return the error as the RPC reply's ``error`` mapping."""
        wire: dict[str, Any] = {"type": type(self).__name__, "code": self.code, "message": self.message}
        if self.details:
            wire["details"] = self.details
        return wire


class InternalError(TraderError):
    """An unexpected failure inside a service (a bug): the caller sees its message."""

    code = "internal"
    exit_code = 1


class ConfigError(TraderError):
    """A configuration file or environment override is invalid."""

    code = "config"
    exit_code = 78  # EX_CONFIG (sysexits.h); 2 is bad command-line usage


class ValidationError(TraderError):
    """A request's arguments are invalid (negative quantity, wrong type, ...)."""

    code = "invalid"
    exit_code = 3


class NotFound(TraderError):
    """A named thing does not exist (unknown symbol, job, order id)."""

    code = "not_found"
    exit_code = 4


class RiskLimitExceeded(TraderError):
    """An order was refused by the risk gate; the message names the limit and the numbers."""

    code = "risk_limit"
    exit_code = 5


class Timeout(TraderError):
    """A call did not complete before its deadline."""

    code = "timeout"
    exit_code = 6


class Unavailable(TraderError):
    """A service or endpoint cannot be reached or is not ready."""

    code = "unavailable"
    exit_code = 7


class BrokerError(TraderError):
    """The broker refused or failed a request."""

    code = "broker"
    exit_code = 8


class Conflict(TraderError):
    """The request clashes with an operation in progress or with the current state."""

    code = "conflict"
    exit_code = 9


class Unauthorized(TraderError):
    """A control request came without a valid token."""

    code = "unauthorized"
    exit_code = 10


class ProtocolError(TraderError):
    """A frame could not be decoded or does not have the envelope's shape."""

    code = "protocol"
    exit_code = 11


class MethodNotFound(TraderError):
    """An RPC named a method that the service does not expose."""

    code = "unknown_method"
    exit_code = 12


class Overloaded(TraderError):
    """A service refused a request because too many are in flight."""

    code = "overloaded"
    exit_code = 13


class StorageError(TraderError):
    """The market store could not be read or written (disk full, read-only, backend down)."""

    code = "storage"
    exit_code = 14


class SourceError(TraderError):
    """A data source could not give an instrument's bars (the instrument and the reason are named)."""

    code = "source"
    exit_code = 15

    @classmethod
    def of(cls, instrument: str, reason: str, *, retryable: bool = False, **details: Any) -> SourceError:
        """Return the error for ``instrument``: ``retryable`` when the same request may succeed later."""
        return cls(f"{instrument}: {reason}", instrument=instrument, reason=reason, retryable=retryable, **details)

    @property
    def retryable(self) -> bool:
        """Whether the same request may succeed later (a timeout, 429, 5xx), not never (unknown, malformed)."""
        return bool(self.details.get("retryable", False))


class FrameTooLarge(ProtocolError):
    """A frame exceeded the endpoint's size limit."""

    code = "frame_too_large"


_BY_CODE: dict[str, type[TraderError]] = {
    cls.code: cls
    for cls in (
        InternalError,
        ConfigError,
        ValidationError,
        NotFound,
        RiskLimitExceeded,
        Timeout,
        Unavailable,
        BrokerError,
        Conflict,
        Unauthorized,
        ProtocolError,
        MethodNotFound,
        Overloaded,
        StorageError,
        SourceError,
        FrameTooLarge,
    )
}

EXIT_CODES: dict[str, int] = {code: cls.exit_code for code, cls in _BY_CODE.items()}
USAGE_EXIT_CODE = 2  # click's and argparse's code for bad command-line usage; no TraderError's


def error_from_wire(error: Any) -> TraderError:
    """Turn a reply's ``error`` mapping back into the typed exception it came from.

    An unknown code or a malformed mapping becomes an ``InternalError`` that keeps
    whatever text there was, so a remote failure never passes quietly.
    """
    if not isinstance(error, dict):
        return ProtocolError(f"malformed error in reply: {error!r}")
    code = error.get("code")
    message = str(error.get("message", ""))
    details = error.get("details") or {}
    cls = _BY_CODE.get(code) if isinstance(code, str) else None
    if cls is None:
        return InternalError(f"{error.get('type', 'Error')}: {message}")
    if not isinstance(details, dict):
        details = {}
    return cls(message, **{str(k): v for k, v in details.items()})
