"""Decode tws-sim's messages with ib_async's own Decoder, without any socket.

ib_async unpacks several messages into a fixed number of names, so feeding
an encoded message to its decoder is the strictest check of a layout there is.
Handlers are called directly (not through ``Decoder.interpret``, which logs
and swallows exceptions), so a wrong field count fails the test.
"""

from __future__ import annotations

from datetime import UTC
from types import SimpleNamespace
from typing import Any

from ib_async.decoder import Decoder

from trader.sim.wire import Field, decode_fields, encode_message


class Recorder:
    """A stand-in ib_async wrapper that records every callback with its arguments."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.defaultTimezone = UTC
        self.ib = SimpleNamespace(TimezoneTWS=None)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


def ib_decode(fields: list[Field], version: int) -> list[tuple[str, tuple[Any, ...]]]:
    """Encode ``fields`` as tws-sim sends them and return what ib_async's decoder calls."""
    payload = encode_message(fields)[4:]
    strings = decode_fields(payload)
    recorder = Recorder()
    decoder = Decoder(recorder, version)  # type: ignore[arg-type]
    decoder.handlers[int(strings[0])](strings)
    return recorder.calls


def ib_decode_one(fields: list[Field], version: int) -> tuple[str, tuple[Any, ...]]:
    """Like :func:`ib_decode`, for a message that makes exactly one callback."""
    calls = ib_decode(fields, version)
    assert len(calls) == 1, calls
    return calls[0]
