"""The HTTP sources' one fetch: a JSON GET with a timeout, retries on 429/5xx/connection errors, secrets masked.

:class:`HttpFetch` wraps one ``httpx.AsyncClient`` per source. A request that
fails in a way the same request may survive (a 429, a 5xx, a connection error
or a timeout) is retried with :class:`trader.retry.RetryPolicy`'s backoff; a
429's ``Retry-After`` is honoured (the wait is the longer of it and the
policy's), but one asking for more than ``max_retry_after`` seconds is not
waited for: the request fails at once, retryable, so the job can come back
later. Giving up is a retryable :class:`~trader.errors.SourceError` naming the
instrument. A body that is not JSON is a non-retryable "malformed" error (the
same request would get the same body); what a JSON body must hold is each
source's business (:func:`malformed` builds its error). With ``per_minute``,
requests are spaced so that no more than that many start in a minute (a
plan's limit kept, rather than run into: Polygon's free plan allows 5).

No secret reaches a log line or an error message: every URL this module logs
or puts in an error goes through :func:`mask`, which blanks the given secret
values and any query parameter named like a key or token.
The HTTP sources also share their windows of fixed length (:func:`fixed_spans`)
and how a payload becomes checked bars or a SourceError (:func:`checked`,
:func:`describe`, :func:`key_parts`, :func:`bar_seconds`).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pydantic

from trader.config import Settings
from trader.data.frames import check_bars
from trader.data.pacing import Spacer
from trader.domain.contract_key import KeyParts, parse_key
from trader.errors import SourceError, ValidationError
from trader.retry import RetryPolicy, Sleep
from trader.strategy.bars import parse_bar_size

__all__ = ["DEFAULT_RETRY", "HttpFetch", "Reply", "bar_seconds", "checked", "describe", "fixed_spans", "key_parts",
           "malformed", "mask"]

log = logging.getLogger(__name__)

#: Five attempts over about 15 s (1, 2, 4, 8 s, +-20%): a provider's brief overload passes, an outage fails the
#: instrument as retryable and the job goes on with the others.
DEFAULT_RETRY = RetryPolicy(1.0, 30.0, jitter=0.2, attempts=5)
_SECRET_PARAM = re.compile(r"(?i)([?&](?:api_?key|apikey|token|access_token|key|crumb)=)[^&#\s]*")
_SNIPPET = 80  # characters of a non-JSON body quoted in the error


def mask(text: str, secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with each of ``secrets`` and any key-like query parameter's value replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _SECRET_PARAM.sub(r"\1***", text)


def malformed(key: str, source: str, what: str) -> SourceError:
    """Return the non-retryable error for a payload of ``source`` that is not what it documents."""
    return SourceError.of(key, f"{source}: malformed response ({what})", retryable=False, source=source)


def fixed_spans(start: pd.Timestamp, end: pd.Timestamp, length: pd.Timedelta) -> Iterator[tuple[pd.Timestamp,
                                                                                                  pd.Timestamp]]:
    """Yield ``[a, b)`` spans of ``length`` (the last one shorter) covering ``[start, end)`` in order."""
    at = start
    while at < end:
        stop = min(at + length, end)
        yield at, stop
        at = stop


def describe(exc: pydantic.ValidationError) -> str:
    """Return what a payload's first shape error is, where (``results[3].h: Field required``)."""
    first = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"]).lstrip(".")
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{where or 'body'}: {first['msg']}{more}"


def key_parts(key: str, source: str) -> KeyParts:
    """Return what ``key`` says of its contract, or a non-retryable SourceError."""
    try:
        return parse_key(key)
    except ValidationError as exc:
        raise SourceError.of(key, f"{source}: {exc}", retryable=False, source=source) from None


def bar_seconds(key: str, source: str, bar_size: str) -> int:
    """Return the seconds of ``bar_size``, or a non-retryable SourceError."""
    try:
        return parse_bar_size(bar_size)
    except ValueError as exc:
        raise SourceError.of(key, f"{source}: {exc}", retryable=False, source=source) from None


def checked(frame: pd.DataFrame, key: str, source: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Return ``frame``'s bars inside ``[start, end)``, checked as the store will; bad bars: a malformed error."""
    inside = frame[(frame.index >= start) & (frame.index < end)]
    try:
        return check_bars(inside, key, start, end)
    except ValidationError as exc:
        raise malformed(key, source, str(exc).removeprefix(f"{key}: ")) from None


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON answer: the HTTP status (2xx, or a 4xx other than 429 whose body is JSON) and the parsed body."""

    status: int
    body: Any


class _Retryable(Exception):
    """A failure the same request may survive; ``after`` is the server's Retry-After in seconds, if any."""

    def __init__(self, reason: str, after: float = 0.0, *, url: str) -> None:
        super().__init__(reason)
        self.reason, self.after, self.url = reason, after, url

    def __repr__(self) -> str:  # what the retry policy's log line shows
        return f"{self.reason} from {self.url}"


@dataclass(slots=True)
class _Call:
    """One get_json's state across its attempts: requests sent, the Retry-After the last answer asked for."""

    sent: int = 0
    after: float = 0.0


def retry_after(value: str | None, now: float | None = None) -> float:
    """Return the seconds a ``Retry-After`` header asks for (delta-seconds or an HTTP date); 0 if absent or bad."""
    if not value:
        return 0.0
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return 0.0
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpFetch:
    """GET JSON for one source, with its timeout, retry policy and secrets (see the module's docstring)."""

    def __init__(self, settings: Settings, *, source: str, headers: Mapping[str, str] | None = None,
                 secrets: Iterable[str] = (), policy: RetryPolicy | None = None,
                 max_retry_after: float = 60.0, per_minute: float | None = None,
                 sleep: Sleep | None = None) -> None:
        self.source = source
        self.policy = policy or DEFAULT_RETRY
        self.max_retry_after = max_retry_after
        self.secrets = tuple(s for s in secrets if s)
        self.requests = 0  # requests sent, retries included
        self.retries = 0
        self._sleep = sleep or asyncio.sleep
        self._spacer = Spacer(60.0 / per_minute if per_minute else 0.0, sleep=self._sleep)  # a plan's rate
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(settings.history.http_timeout),
                                         headers=dict(headers or {}), follow_redirects=True)

    def mask(self, text: str) -> str:
        """Return ``text`` with this source's secrets masked."""
        return mask(text, self.secrets)

    async def get_json(self, key: str, url: str, params: Mapping[str, str | int] | None = None) -> Reply:
        """GET ``url`` for instrument ``key`` and return its JSON; SourceError when it cannot be had."""
        shown = self.mask(str(httpx.URL(url, params=params)))
        call = _Call()

        async def attempt() -> Reply:
            call.sent += 1
            try:
                return await self._attempt(key, url, params, shown)
            except _Retryable as exc:
                call.after = exc.after  # before the give-up is asked
                raise

        async def sleep(seconds: float) -> None:  # the policy's wait, or longer when the server asked so
            wait, call.after = max(seconds, call.after), 0.0
            await self._sleep(wait)

        def on_retry(error: BaseException) -> None:
            self.retries += 1

        try:
            return await self.policy.call(attempt, retry_on=_Retryable, what=f"{self.source} {key}",
                                          logger=log, on_retry=on_retry, sleep=sleep,
                                          give_up=lambda: call.after > self.max_retry_after)
        except _Retryable as exc:
            tries = f"{call.sent} request{'s' if call.sent > 1 else ''}"
            raise SourceError.of(key, f"{self.source}: {exc.reason}; gave up after {tries}", retryable=True,
                                 source=self.source, url=exc.url) from None

    async def _attempt(self, key: str, url: str, params: Mapping[str, str | int] | None, shown: str) -> Reply:
        await self._spacer.wait()  # a plan's requests per minute, kept rather than answered with 429s
        self.requests += 1
        try:
            response = await self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise _Retryable(f"no answer within {self._client.timeout.read:g} s", url=shown) from None
        except httpx.TransportError as exc:  # refused, reset, a broken HTTP exchange
            raise _Retryable(f"{type(exc).__name__}: {self.mask(str(exc)) or 'connection failed'}", url=shown) \
                from None
        status = response.status_code
        if status == 429:
            after = retry_after(response.headers.get("Retry-After"))
            reason = f"HTTP 429 (rate limited{f', retry after {after:g} s' if after else ''})"
            raise _Retryable(reason, after, url=shown)
        if status >= 500:
            raise _Retryable(f"HTTP {status}", url=shown)
        try:
            body = json.loads(response.content)
        except ValueError:
            text = self.mask(response.text[:_SNIPPET].replace("\n", " "))
            kind = response.headers.get("content-type", "no content type")
            if status >= 400:
                raise SourceError.of(key, f"{self.source}: HTTP {status} ({kind}: {text!r})",
                                     retryable=False, source=self.source, status=status, url=shown) from None
            raise malformed(key, self.source, f"not JSON: {kind}: {text!r}") from None
        if status >= 300:
            log.debug("%s %s: HTTP %d from %s", self.source, key, status, shown)
        return Reply(status, body)

    async def close(self) -> None:
        """Close the connections."""
        await self._client.aclose()
