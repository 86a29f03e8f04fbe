"""Health checks for jobs (tcp, heartbeat, command) and the monitor that collects heartbeats off the bus.

Every service publishes ``heartbeat.<service>`` each second with a mapping
``{service, state, pid, time, uptime}``. ``HeartbeatMonitor`` owns one bus
subscriber and keeps, per service, the last beat and the monotonic time it
arrived. A heartbeat job is healthy while its beats say RUNNING and the last
one is younger than ``settings.pycron.heartbeat_timeout``; DEGRADED is alive
but not healthy. Only beats that arrived after the current process started
count, so a restarted job cannot look healthy on its predecessor's beats.

Anyone on the host can publish on the bus, so a beat for a service pycron
supervises counts only if it carries the pid of that job's current process
(or of a process in its session, for a job started through a wrapper): the
supervisor registers each job's pid with ``expect``. Any other beat (a
forgery, a stray process of another stack, the predecessor's last beat) is
ignored and counted in ``ignored``. Beats of services pycron does not
supervise are not kept at all, only counted (under ``"<unsupervised>"``): a
payload may be as large as a bus frame (8 MB), so keeping the last one of
each made-up name would let any publisher grow pycron's memory. This stops a publisher that does not know
the pid; one that reads it from ``ps`` can still forge a beat, which only
CURVE on the bus (keys per publisher) rules out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pycron.config import CommandHealth, HeartbeatHealth, Job, TcpHealth
from trader.messaging.curve import ClientKeys
from trader.messaging.pubsub import Message, Subscriber
from trader.peer_text import LogThrottle, clip

log = logging.getLogger(__name__)

HEARTBEAT_TOPIC = "heartbeat"
HEALTHY_STATE = "RUNNING"


@dataclass(frozen=True, slots=True)
class Beat:
    """The last heartbeat of one service and when it arrived (monotonic seconds)."""

    service: str
    state: str
    pid: int | None
    arrived: float


UNSUPERVISED = "<unsupervised>"  # the ``ignored`` key counting beats of services pycron does not run


class HeartbeatMonitor:
    """Record the last heartbeat of every service pycron supervises (see ``expect``).

    ``start()`` must run inside the loop; the bus may come up later (it is a
    job like any other): ZeroMQ connects and reconnects on its own.
    """

    def __init__(
        self, endpoint: str, *, clock: Callable[[], float] = time.monotonic, curve: ClientKeys | None = None
    ) -> None:
        self.endpoint = endpoint
        self._clock = clock
        self._subscriber = Subscriber(endpoint, curve=curve)
        self._subscription: Any = None
        self._beats: dict[str, Beat] = {}
        self._expected: dict[str, Callable[[], int | None]] = {}
        self._throttle = LogThrottle(burst=3, interval=60.0)
        self.malformed = 0
        #: Beats ignored because their pid is not the supervised process's, per service.
        self.ignored: dict[str, int] = {}

    def start(self) -> None:
        """Subscribe to ``heartbeat.*``; call from a coroutine. Safe to call twice."""
        if self._subscription is not None:
            return
        self._subscription = self._subscriber.observe(HEARTBEAT_TOPIC).subscribe(
            on_next=self._on_message
        )
        self._subscriber.start()
        log.info("heartbeat monitor listening on %s", self.endpoint)

    def close(self) -> None:
        """Stop listening; safe to call twice."""
        if self._subscription is not None:
            self._subscription.dispose()
            self._subscription = None
        self._subscriber.close()

    def last(self, service: str) -> Beat | None:
        """Return the last beat of ``service``, or None if none arrived yet."""
        return self._beats.get(service)

    def age(self, beat: Beat) -> float:
        """Return how many seconds ago ``beat`` arrived."""
        return self._clock() - beat.arrived

    def expect(self, service: str, pid_of: Callable[[], int | None]) -> None:
        """Count ``service``'s beats only if they carry the pid ``pid_of()`` returns (None: no process)."""
        self._expected[service] = pid_of

    def genuine(self, service: str, pid: Any) -> bool:
        """Return whether a beat of ``service`` carrying ``pid`` comes from the process pycron runs for it."""
        pid_of = self._expected.get(service)
        if pid_of is None:
            return False  # not supervised here: no process of ours beats for it
        expected = pid_of()
        if expected is None or type(pid) is not int or pid <= 0:
            return False
        if pid == expected:
            return True
        try:
            return os.getsid(pid) == expected  # the job leads its own session; a wrapper's child is in it
        except (OSError, OverflowError):
            return False

    def record(self, service: str, payload: Mapping[str, Any]) -> Beat | None:
        """Record one heartbeat payload as arriving now; return None if it was ignored.

        Only its state and pid are kept. A beat is ignored if its service is
        not supervised (counted under ``UNSUPERVISED``) or its pid is not the
        supervised process's (counted under the service's name).
        """
        if service not in self._expected:
            self.ignored[UNSUPERVISED] = self.ignored.get(UNSUPERVISED, 0) + 1
            return None
        state = payload.get("state")
        pid = payload.get("pid")
        if not self.genuine(service, pid):
            count = self.ignored[service] = self.ignored.get(service, 0) + 1
            dropped = self._throttle.allow(service)
            if dropped is not None:
                log.warning("ignored a heartbeat of %s from pid %.20r: not the supervised process "
                            "(%d ignored so far)", service, pid, count)
            return None
        beat = Beat(
            service=service,
            state=str(getattr(state, "value", state)),  # a state enum or its plain value
            pid=pid if isinstance(pid, int) else None,
            arrived=self._clock(),
        )
        self._beats[service] = beat
        return beat

    def _on_message(self, message: Message) -> None:
        service = message.topic.partition(".")[2]
        payload = message.payload
        if not service or not isinstance(payload, Mapping) or "state" not in payload:
            self.malformed += 1
            if self.malformed <= 10:
                log.warning("ignoring malformed heartbeat on %s: %s", clip(message.topic), clip(payload))
            return
        self.record(service, payload)


class HealthCheck(Protocol):
    """One way to tell whether a job's current process is healthy."""

    async def check(self, since: float) -> bool:
        """Return whether the job is healthy; ``since`` is when its process started (monotonic)."""
        ...


class TcpCheck:
    """Healthy while a TCP connection to ``host:port`` succeeds within ``timeout``."""

    def __init__(self, spec: TcpHealth, timeout: float) -> None:
        self.host, self.port, self.timeout = spec.host, spec.port, timeout

    async def check(self, since: float) -> bool:
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), self.timeout
            )
        except (TimeoutError, OSError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True


class CommandCheck:
    """Healthy while the command exits 0 within ``timeout``; its output is discarded."""

    def __init__(
        self, spec: CommandHealth, timeout: float, cwd: Path, env: Mapping[str, str]
    ) -> None:
        self.argv, self.timeout, self.cwd, self.env = spec.argv, timeout, cwd, dict(env)
        self._warned = False

    async def check(self, since: float) -> bool:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError as exc:
            if not self._warned:
                log.warning("health command %s cannot run: %s", self.argv[0], exc)
                self._warned = True
            return False
        try:
            code = await asyncio.wait_for(proc.wait(), self.timeout)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            await proc.wait()
            return False
        return code == 0


class HeartbeatCheck:
    """Healthy while the service's beats say RUNNING, arrive after ``since`` and are fresh."""

    def __init__(self, monitor: HeartbeatMonitor, service: str, timeout: float) -> None:
        self.monitor, self.service, self.timeout = monitor, service, timeout

    async def check(self, since: float) -> bool:
        beat = self.monitor.last(self.service)
        return (
            beat is not None
            and beat.arrived >= since
            and beat.state == HEALTHY_STATE
            and self.monitor.age(beat) <= self.timeout
        )


def make_check(
    job: Job,
    *,
    monitor: HeartbeatMonitor,
    heartbeat_timeout: float,
    env: Mapping[str, str],
) -> HealthCheck | None:
    """Return the job's health check, or None if it has none (healthy once settled)."""
    spec = job.health
    if spec is None:
        return None
    if isinstance(spec, TcpHealth):
        return TcpCheck(spec, job.health_timeout)
    if isinstance(spec, HeartbeatHealth):
        return HeartbeatCheck(monitor, spec.service, heartbeat_timeout)
    return CommandCheck(spec, job.health_timeout, job.cwd, env)
