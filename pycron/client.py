"""A small synchronous client for pycron's control API (httpx), used by the CLI and tests.

Replies arrive in the API's envelope; an error envelope becomes the typed
``TraderError`` it came from (``NotFound``, ``Conflict``, ``Unauthorized``...),
a refused connection becomes ``Unavailable`` and a slow reply ``Timeout``.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from pycron import runfiles
from trader.config import Settings
from trader.errors import ConfigError, ProtocolError, Timeout, Unavailable, error_from_wire

# Control operations wait for a job to settle (start_timeout + grace): give them room.
CONTROL_TIMEOUT = 120.0


class PycronClient:
    """Talk to one pycron: ``status()``, ``start/stop/restart(job)``, ``shutdown()``."""

    def __init__(
        self, base_url: str, token: str, *, timeout: float = 5.0, verify: ssl.SSLContext | bool = True
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            trust_env=False,  # loopback control traffic must never go through a proxy
            verify=verify,
            # Shorter than the API's 5 s idle timeout: a kept connection is dropped here first.
            limits=httpx.Limits(keepalive_expiry=2.0),
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, timeout: float = 5.0) -> PycronClient:
        """Return a client for the pycron these settings describe, with its token."""
        token = runfiles.read_token(settings)
        if not token:
            raise ConfigError(
                f"no pycron control token: set TRADER_PYCRON__TOKEN or start the stack with `trader up` "
                f"(it writes {runfiles.token_path(settings)})"
            )
        return cls.with_token(settings, token, timeout=timeout)

    @classmethod
    def with_token(cls, settings: Settings, token: str, *, timeout: float = 5.0) -> PycronClient:
        """Return a client for the pycron these settings describe: HTTPS if ``security.tls`` is set."""
        cert = settings.security.tls.cert_file
        if cert is None:
            return cls(f"http://{settings.pycron.host}:{settings.pycron.port}", token, timeout=timeout)
        # HTTPS (security.tls): trust the API's own certificate, self-signed or not; it must name pycron.host.
        try:
            verify = ssl.create_default_context(cafile=settings.path(cert))
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"security.tls.cert_file: cannot load {settings.path(cert)}: {exc}") from None
        return cls(f"https://{settings.pycron.host}:{settings.pycron.port}", token, timeout=timeout, verify=verify)

    def __enter__(self) -> PycronClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # -- calls ---------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Return ``{profile, pid, closing, jobs: [...]}``."""
        return self._call("GET", "/status")

    def jobs(self) -> list[dict[str, Any]]:
        """Return the status of every job."""
        return list(self.status()["jobs"])

    def start(self, job: str) -> dict[str, Any]:
        """Start ``job`` and return its status once the start settled."""
        return self._call("POST", f"/jobs/{job}/start", timeout=CONTROL_TIMEOUT)

    def stop(self, job: str) -> dict[str, Any]:
        """Stop ``job`` (it stays stopped) and return its status."""
        return self._call("POST", f"/jobs/{job}/stop", timeout=CONTROL_TIMEOUT)

    def restart(self, job: str) -> dict[str, Any]:
        """Restart ``job`` and return its status once the start settled."""
        return self._call("POST", f"/jobs/{job}/restart", timeout=CONTROL_TIMEOUT)

    def shutdown(self) -> None:
        """Ask pycron to stop every job and exit; returns once the request is accepted."""
        self._call("POST", "/shutdown")

    def _call(self, method: str, path: str, *, timeout: float | None = None) -> Any:
        try:
            response = self._http.request(method, path, timeout=timeout or self.timeout)
        except httpx.TimeoutException:
            raise Timeout(
                f"pycron did not answer {method} {path} within {timeout or self.timeout:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise Unavailable(f"pycron is not reachable at {self.base_url}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            raise ProtocolError(
                f"pycron answered {method} {path} with HTTP {response.status_code}, not JSON"
            ) from None
        if not isinstance(body, dict) or "ok" not in body:
            raise ProtocolError(f"pycron answered {method} {path} without the reply envelope")
        if not body["ok"]:
            raise error_from_wire(body.get("error"))
        return body.get("result")
