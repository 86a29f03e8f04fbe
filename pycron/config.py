"""The jobs file (configs/pycron.yaml): strict job models, ``${...}`` expansion and profile selection.

``load_jobs(settings)`` reads the file named by ``settings.pycron.config``,
validates every job (unknown keys, missing command, bad cron, unknown
dependency, dependency cycle, unknown ``${key}``), picks the jobs of the
settings' profile and returns them resolved: argv split and expanded, paths
absolute, health checks and schedules parsed. Every problem is a ConfigError
that names the job, raised before anything starts.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfoNotFoundError

from pydantic import BeforeValidator, Field, model_validator

from pycron import graph
from pycron.expand import Expander
from pycron.schedule import RunSchedule, Schedule, WindowSchedule, is_valid, parse_timezone
from trader.config import Settings, StrictModel, read_yaml, validate
from trader.errors import ConfigError
from trader.retry import RetryPolicy

JOB_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")


def _scalar_to_str(value: Any) -> Any:
    """Let YAML numbers and booleans stand where a string is expected (``--port: 6379``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


Text = Annotated[str, BeforeValidator(_scalar_to_str)]


class RestartPolicy(str, Enum):
    """When an exited job is started again."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    NEVER = "never"


# -- the file's models --------------------------------------------------------


class HealthModel(StrictModel):
    """How to tell a job is healthy: exactly one of ``tcp``, ``heartbeat``, ``command``."""

    tcp: Text | None = None
    heartbeat: str | None = None
    command: Text | None = None
    interval: float = Field(2.0, gt=0, description="seconds between checks once running")
    timeout: float = Field(2.0, gt=0, description="seconds one tcp or command check may take")

    @model_validator(mode="after")
    def _exactly_one(self) -> HealthModel:
        given = [k for k in ("tcp", "heartbeat", "command") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of tcp, heartbeat, command (got {', '.join(given) or 'none'})"
            )
        return self


class BackoffModel(StrictModel):
    """Delay before restart number n: ``min(initial * factor**(n-1), max)`` seconds (trader.retry).

    n counts the failures within ``restart_window`` since the job last stayed
    healthy for ``reset_after`` seconds: a job that has been healthy that long
    restarts after ``initial`` again. Its earlier failures still count toward
    ``max_restarts``: the crash-loop verdict is every exit within the window.
    """

    initial: float = Field(0.1, gt=0, description="seconds before the first restart")
    factor: float = Field(2.0, ge=1)
    max: float = Field(60.0, gt=0)
    reset_after: float = Field(10.0, gt=0, description="seconds healthy that restart the backoff from initial")

    def policy(self) -> RetryPolicy:
        """Return the platform's retry policy with these delays."""
        return RetryPolicy(self.initial, self.max, factor=self.factor)


class ScheduleModel(StrictModel):
    """Either ``run: CRON`` (one-shot runs) or ``start: CRON`` + ``stop: CRON`` (a window)."""

    run: str | None = None
    start: str | None = None
    stop: str | None = None
    timezone: str | None = Field(None, description="IANA zone for the cron fields; default: local")

    @model_validator(mode="after")
    def _one_kind(self) -> ScheduleModel:
        window = (self.start, self.stop)
        if self.run is not None and any(v is not None for v in window):
            raise ValueError("give either run, or start and stop, not both")
        if self.run is None and (self.start is None or self.stop is None):
            raise ValueError("give run, or both start and stop")
        for key in ("run", "start", "stop"):
            expr = getattr(self, key)
            if expr is not None and not is_valid(expr):
                raise ValueError(f"{key}: invalid cron expression {expr!r}")
        if self.timezone is not None:
            try:
                parse_timezone(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"timezone: unknown time zone {self.timezone!r}") from None
        return self


class JobModel(StrictModel):
    """One job as written in the file; see ``configs/pycron.yaml`` for the annotated format."""

    command: Text
    args: list[Text] = []
    cwd: str | None = None
    env: dict[str, Text] = {}
    depends_on: list[str] = []
    health: HealthModel | None = None
    restart: RestartPolicy | None = None
    backoff: BackoffModel = BackoffModel()
    max_restarts: int = Field(5, ge=0, description="restarts allowed within restart_window")
    restart_window: float = Field(60.0, gt=0)
    grace_period: float = Field(
        10.0, ge=0, description="SIGTERM, then SIGKILL after this many seconds"
    )
    start_timeout: float = Field(30.0, gt=0, description="seconds to become healthy after a start")
    settle_time: float = Field(
        1.0, ge=0, description="without a health check: alive this long = healthy"
    )
    schedule: ScheduleModel | None = None
    log: str | None = None
    makedirs: list[str] = Field([], description="directories to create before each start")

    @model_validator(mode="after")
    def _check(self) -> JobModel:
        if not self.command.strip():
            raise ValueError("command: must not be empty")
        if self.schedule is not None and self.schedule.run is not None:
            if self.health is not None:
                raise ValueError("a one-shot (schedule.run) job has no health check")
            if self.restart is RestartPolicy.ALWAYS:
                raise ValueError(
                    "a one-shot (schedule.run) job cannot restart always: use on-failure or never"
                )
        return self


class PycronFile(StrictModel):
    """The whole jobs file."""

    jobs: dict[str, JobModel]
    profiles: dict[str, list[str]] = {}


# -- resolved jobs ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpHealth:
    """Healthy while ``host:port`` accepts a TCP connection."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class HeartbeatHealth:
    """Healthy while ``heartbeat.<service>`` arrives with state RUNNING."""

    service: str


@dataclass(frozen=True, slots=True)
class CommandHealth:
    """Healthy while the command exits 0."""

    argv: tuple[str, ...]


HealthSpec = TcpHealth | HeartbeatHealth | CommandHealth


@dataclass(frozen=True, slots=True)
class Job:
    """One job ready to run: every ``${...}`` expanded, every path absolute."""

    name: str
    argv: tuple[str, ...]
    cwd: Path
    log: Path
    env: Mapping[str, str] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()
    health: HealthSpec | None = None
    health_interval: float = 2.0
    health_timeout: float = 2.0
    restart: RestartPolicy = RestartPolicy.ALWAYS
    backoff: BackoffModel = BackoffModel()
    max_restarts: int = 5
    restart_window: float = 60.0
    grace_period: float = 10.0
    start_timeout: float = 30.0
    settle_time: float = 1.0
    schedule: Schedule | None = None
    makedirs: tuple[Path, ...] = ()

    @property
    def oneshot(self) -> bool:
        """Whether the job runs to completion at scheduled times rather than staying up."""
        return isinstance(self.schedule, RunSchedule)

    def backoff_delay(self, attempt: int) -> float:
        """Return the delay before restart number ``attempt`` (1-based)."""
        return self.backoff.policy().delay(attempt)


@dataclass(frozen=True, slots=True)
class PycronConfig:
    """The jobs of one profile, in file order, and where they came from."""

    profile: str
    jobs: dict[str, Job]
    source: Path

    def graph(self) -> dict[str, tuple[str, ...]]:
        """Return each job mapped to its dependencies."""
        return {name: job.depends_on for name, job in self.jobs.items()}


# -- loading -------------------------------------------------------------------------


def load_jobs(settings: Settings, path: Path | None = None) -> PycronConfig:
    """Read and validate the jobs file, and return the jobs of ``settings.profile``."""
    path = path or settings.config_path(settings.pycron.config)
    return parse_jobs(read_yaml(path), settings, path)


def parse_jobs(data: Mapping[str, Any], settings: Settings, source: Path | str) -> PycronConfig:
    """Validate a jobs mapping (the parsed YAML) and resolve the jobs of ``settings.profile``."""
    where = str(source)
    spec = validate(PycronFile, data, where)
    for name in spec.jobs:
        if not JOB_NAME_RE.match(name):
            raise ConfigError(f"{where}: jobs.{name}: a job name is letters, digits, '_' and '-'")
    _check_references(spec, where)
    profile = settings.profile
    if spec.profiles:
        if profile not in spec.profiles:
            known = ", ".join(sorted(spec.profiles))
            raise ConfigError(f"{where}: no profile {profile!r} (known: {known})")
        wanted = set(spec.profiles[profile])
    else:
        wanted = set(spec.jobs)
    expander = Expander(settings, where)
    jobs: dict[str, Job] = {}
    for name, model in spec.jobs.items():
        # Every job is expanded so a typo anywhere fails now; only the profile's must be fully set.
        job = _resolve(name, model, settings, expander, strict=name in wanted)
        if name in wanted:
            jobs[name] = job
    return PycronConfig(profile=profile, jobs=jobs, source=Path(source))


def _check_references(spec: PycronFile, where: str) -> None:
    for name, job in spec.jobs.items():
        for dep in job.depends_on:
            if dep not in spec.jobs:
                raise ConfigError(f"{where}: jobs.{name}.depends_on: unknown job {dep!r}")
            dep_schedule = spec.jobs[dep].schedule
            if dep_schedule is not None and dep_schedule.run is not None:
                raise ConfigError(
                    f"{where}: jobs.{name}.depends_on: {dep!r} is a one-shot scheduled job; "
                    "nothing can depend on it"
                )
    graph.check_acyclic({name: job.depends_on for name, job in spec.jobs.items()}, where)
    for profile, names in spec.profiles.items():
        for name in names:
            if name not in spec.jobs:
                raise ConfigError(f"{where}: profiles.{profile}: unknown job {name!r}")
        chosen = set(names)
        for name in names:
            missing = [d for d in spec.jobs[name].depends_on if d not in chosen]
            if missing:
                raise ConfigError(
                    f"{where}: profiles.{profile}: job {name!r} depends on {', '.join(map(repr, missing))}, "
                    "which the profile does not include"
                )


def _resolve(
    name: str, model: JobModel, settings: Settings, expander: Expander, *, strict: bool
) -> Job:
    prefix = f"jobs.{name}"

    def ex(text: str, where: str, secrets_ok: bool = False) -> str:
        return expander.expand(text, f"{prefix}.{where}", secrets_ok=secrets_ok, strict=strict)

    command = model.command.strip()
    words = shlex.split(command) if " " in command else [command]
    argv = [ex(w, "command") for w in words]
    argv += [ex(a, f"args[{i}]") for i, a in enumerate(model.args)]
    env = {key: ex(value, f"env.{key}", secrets_ok=True) for key, value in model.env.items()}
    cwd = settings.path(ex(model.cwd, "cwd")) if model.cwd else settings.home
    log = (
        settings.path(ex(model.log, "log"))
        if model.log
        else (settings.path(settings.storage.logs_dir) / f"{name}.out")
    )
    makedirs = tuple(settings.path(ex(d, f"makedirs[{i}]")) for i, d in enumerate(model.makedirs))
    health = _resolve_health(
        model.health, lambda text, key: ex(text, f"health.{key}"), f"{expander.source}: {prefix}"
    )
    schedule: Schedule | None = None
    if model.schedule is not None:
        tz = parse_timezone(model.schedule.timezone)
        if model.schedule.run is not None:
            schedule = RunSchedule(model.schedule.run, tz)
        else:
            assert model.schedule.start is not None and model.schedule.stop is not None
            schedule = WindowSchedule(model.schedule.start, model.schedule.stop, tz)
    restart = model.restart
    if restart is None:
        restart = (
            RestartPolicy.ON_FAILURE if isinstance(schedule, RunSchedule) else RestartPolicy.ALWAYS
        )
    return Job(
        name=name,
        argv=tuple(argv),
        cwd=cwd,
        log=log,
        env=env,
        depends_on=tuple(model.depends_on),
        health=health,
        health_interval=model.health.interval if model.health else 2.0,
        health_timeout=model.health.timeout if model.health else 2.0,
        restart=restart,
        backoff=model.backoff,
        max_restarts=model.max_restarts,
        restart_window=model.restart_window,
        grace_period=model.grace_period,
        start_timeout=model.start_timeout,
        settle_time=model.settle_time,
        schedule=schedule,
        makedirs=makedirs,
    )


def _resolve_health(model: HealthModel | None, ex: Any, where: str) -> HealthSpec | None:
    if model is None:
        return None
    if model.heartbeat is not None:
        return HeartbeatHealth(ex(model.heartbeat, "heartbeat"))
    if model.command is not None:
        return CommandHealth(tuple(ex(word, "command") for word in shlex.split(model.command)))
    assert model.tcp is not None
    return _parse_tcp(ex(model.tcp, "tcp"), f"{where}.health.tcp")


def _parse_tcp(text: str, where: str) -> TcpHealth:
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = "127.0.0.1", text
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: expected PORT or HOST:PORT, got {text!r}") from None
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: port {port} is out of range")
    return TcpHealth(host.strip("[]") or "127.0.0.1", port)
