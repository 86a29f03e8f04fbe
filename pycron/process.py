"""One supervised child process: spawned in its own process group, logged to a file, stopped by group.

The child gets a session (and so a process group) of its own, so a stop
reaches everything it spawned: SIGTERM to the group, then SIGKILL to the
group once the grace period is over. Its stdout and stderr go through a pipe
that pycron reads into the job's log file, rotated by size
(:mod:`pycron.output`), framed by one line from pycron at each start and exit
so a log tail tells the story of the restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path

from pycron.output import DEFAULT_ROTATION, OutputCapture, RotatingOutput, Rotation
from pycron.runfiles import TOKEN_ENV
from trader.logsetup import SUPERVISED_ENV

log = logging.getLogger(__name__)

OUTPUT_DRAIN = 2.0  # seconds to wait, after the exit, for what is still in the output pipe
# Variables a child must never see: the control token authorises stopping every job.
PRIVATE_ENV = frozenset({TOKEN_ENV})


def child_environment(
    trader_env: Mapping[str, str],
    job_env: Mapping[str, str],
    base: Mapping[str, str] | None = None,
    *,
    name: str | None = None,
) -> dict[str, str]:
    """Return a child's environment: ``base`` (os.environ) + the TRADER_* locators + the job's env.

    With ``name``, ``PYCRON_JOB`` is set to it: a service that sees it logs
    only errors to stderr (``trader.logsetup.supervised_stderr``).
    """
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in PRIVATE_ENV}
    env.setdefault("PYTHONUNBUFFERED", "1")
    if name is not None:
        env[SUPERVISED_ENV] = name
    env.update(trader_env)
    env.update(job_env)
    return env


def describe_exit(code: int | None) -> str:
    """Return ``exit 3`` or ``killed by SIGKILL`` for a returncode (negative = signal)."""
    if code is None:
        return "not exited"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def pycron_line(line: str) -> str:
    """Return ``line`` as pycron frames it in a job's log: ``--- pycron <time> <line>``."""
    stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
    return f"--- pycron {stamp} {line}\n"


def append_log(path: Path, line: str) -> None:
    """Append one pycron line to a job's log file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(pycron_line(line))


class ChildProcess:
    """One run of a job's command. ``start`` once; ``stop`` as often as you like."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str],
        log_path: Path,
        grace_period: float,
        rotation: Rotation = DEFAULT_ROTATION,
    ) -> None:
        self.name = name
        self.argv = tuple(argv)
        self.cwd = cwd
        self.env = dict(env)
        self.log_path = log_path
        self.grace_period = grace_period
        self.output = RotatingOutput(log_path, rotation)
        self.pid: int | None = None
        self.returncode: int | None = None
        self.started_at: datetime | None = None
        self.started_mono: float | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._waiter: asyncio.Task[int] | None = None
        self._stopper: asyncio.Task[int | None] | None = None
        self._capture: OutputCapture | None = None

    @property
    def running(self) -> bool:
        """Whether the child was started and has not exited yet."""
        return self._proc is not None and self.returncode is None

    @property
    def uptime(self) -> float | None:
        """Seconds since the start while the child runs, else None."""
        if not self.running or self.started_mono is None:
            return None
        return time.monotonic() - self.started_mono

    async def start(self) -> int:
        """Spawn the child and return its pid; OSError (e.g. command not found) propagates."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name}: already started")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        capture = OutputCapture(self.output)
        spawn = asyncio.ensure_future(
            asyncio.create_subprocess_exec(
                *self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=capture.child_fd,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        )
        try:
            self._proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            # The kernel may already have the child: finish the spawn and kill it, never lose it.
            with contextlib.suppress(Exception):
                orphan = await spawn
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(orphan.pid, signal.SIGKILL)
                await orphan.wait()
            await capture.finish(0)
            raise
        except BaseException:
            await capture.finish(0)
            raise
        capture.spawned()
        capture.begin()  # no await between the spawn and the waiter: a cancel here would orphan the child
        self._capture = capture
        self.pid = self._proc.pid
        self.started_at = datetime.now(timezone.utc)
        self.started_mono = time.monotonic()
        self._waiter = asyncio.get_running_loop().create_task(
            self._wait(), name=f"pycron-wait:{self.name}"
        )
        self.note(f"started {self.name} (pid {self.pid}): {' '.join(self.argv)}")
        log.info("%s: started pid %d", self.name, self.pid)
        return self.pid

    async def _wait(self) -> int:
        assert self._proc is not None
        code = await self._proc.wait()
        self.returncode = code
        # Whatever the leader left behind in its group dies with it, so a restart finds its port free.
        self._signal_group(signal.SIGKILL)
        if self._capture is not None:
            await self._capture.finish(OUTPUT_DRAIN)
        self.note(f"{self.name} (pid {self.pid}) ended: {describe_exit(code)}")
        self.output.close()
        return code

    def note(self, line: str) -> None:
        """Write one pycron line into the job's log, in order with the child's output."""
        text = pycron_line(line) if self.output.ends_line else "\n" + pycron_line(line)
        self.output.write(text.encode("utf-8", "replace"))

    async def wait(self) -> int:
        """Wait for the child to exit and return its returncode (negative: killed by that signal)."""
        if self._waiter is None:
            raise RuntimeError(f"{self.name}: not started")
        return await asyncio.shield(self._waiter)

    async def wait_for(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds for the exit; return the returncode, or None if still running."""
        if self._waiter is None:
            raise RuntimeError(f"{self.name}: not started")
        done, _ = await asyncio.wait({self._waiter}, timeout=max(0.0, timeout))
        return self._waiter.result() if done else None

    async def stop(self) -> int | None:
        """SIGTERM the group, SIGKILL it after the grace period; return the returncode.

        Safe to call twice and from several tasks: they all wait for the same stop,
        which goes on to the end even if a caller is cancelled.
        """
        if self._proc is None or self._waiter is None:
            return None
        if self._stopper is None:
            self._stopper = asyncio.get_running_loop().create_task(
                self._stop(), name=f"pycron-stop:{self.name}"
            )
        return await asyncio.shield(self._stopper)

    async def _stop(self) -> int | None:
        assert self._waiter is not None
        if self.returncode is None:
            log.info(
                "%s: stopping pid %s (SIGTERM, grace %.1fs)", self.name, self.pid, self.grace_period
            )
            self._signal_group(signal.SIGTERM)
            if await self.wait_for(self.grace_period) is None:
                log.warning(
                    "%s: pid %s still alive after %.1fs; SIGKILL",
                    self.name,
                    self.pid,
                    self.grace_period,
                )
                self.note(f"{self.name} (pid {self.pid}) ignored SIGTERM for {self.grace_period}s: SIGKILL")
                self._signal_group(signal.SIGKILL)
        return await self.wait()

    def _signal_group(self, sig: signal.Signals) -> None:
        if self.pid is None:
            return
        # The child is its session's leader, so its pid is also its process group id.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, sig)
