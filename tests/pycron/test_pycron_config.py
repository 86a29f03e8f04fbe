"""The jobs file: validation errors name the job and the key; ${...} expansion; profiles; the repo's file."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from pycron_helpers import jobs_from, make_settings

from pycron.config import CommandHealth, HeartbeatHealth, RestartPolicy, TcpHealth, load_jobs
from pycron.graph import check_acyclic, start_levels, stop_levels
from pycron.schedule import RunSchedule, WindowSchedule
from trader.config import load_settings
from trader.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def settings(tmp_path: Path):
    return make_settings(tmp_path, redis={"port": 7001, "password": "s3cret"})


def config_error(text: str, settings) -> str:
    with pytest.raises(ConfigError) as info:
        jobs_from(text, settings)
    return str(info.value)


# -- validation errors ------------------------------------------------------------------


def test_unknown_key_names_job_and_key(settings) -> None:
    message = config_error(
        """
        jobs:
          redis:
            command: redis-server
            helth: {tcp: 6379}
        """,
        settings,
    )
    assert "jobs.redis.helth: unknown key" in message


def test_missing_command_names_job(settings) -> None:
    message = config_error("jobs:\n  bus:\n    args: [-m, services.bus]\n", settings)
    assert "jobs.bus.command" in message and "required" in message.lower()


def test_unknown_dependency_names_job_and_dependency(settings) -> None:
    message = config_error(
        """
        jobs:
          bus: {command: bus, depends_on: [redis]}
        """,
        settings,
    )
    assert "jobs.bus.depends_on: unknown job 'redis'" in message


def test_dependency_cycle_is_named(settings) -> None:
    message = config_error(
        """
        jobs:
          a: {command: a, depends_on: [b]}
          b: {command: b, depends_on: [a]}
          c: {command: c}
        """,
        settings,
    )
    assert "dependency cycle:" in message
    cycle = message.split("dependency cycle:")[1].strip()
    assert cycle in ("a -> b -> a", "b -> a -> b")


def test_self_dependency_is_a_cycle(settings) -> None:
    assert "dependency cycle: a -> a" in config_error(
        "jobs:\n  a: {command: a, depends_on: [a]}\n", settings
    )


def test_unknown_settings_key_names_job_and_field(settings) -> None:
    message = config_error(
        """
        jobs:
          redis:
            command: redis-server
            args: ["--port", "${redis.prot}"]
        """,
        settings,
    )
    assert "jobs.redis.args[1]: unknown key ${redis.prot}" in message


def test_unknown_key_in_a_job_outside_the_profile_is_still_an_error(settings) -> None:
    message = config_error(
        """
        jobs:
          a: {command: a}
          b: {command: "${nope}"}
        profiles:
          default: [a]
        """,
        settings,
    )
    assert "jobs.b.command: unknown key ${nope}" in message


def test_profile_naming_unknown_job(settings) -> None:
    message = config_error(
        """
        jobs:
          a: {command: a}
        profiles:
          default: [a, ghost]
        """,
        settings,
    )
    assert "profiles.default: unknown job 'ghost'" in message


def test_profile_must_include_dependencies(settings) -> None:
    message = config_error(
        """
        jobs:
          redis: {command: redis-server}
          bus: {command: bus, depends_on: [redis]}
        profiles:
          default: [bus]
        """,
        settings,
    )
    assert "profiles.default: job 'bus' depends on 'redis'" in message


def test_unknown_profile(settings) -> None:
    message = config_error("jobs:\n  a: {command: a}\nprofiles:\n  live: [a]\n", settings)
    assert "no profile 'default'" in message and "live" in message


@pytest.mark.parametrize(
    ("health", "expected"),
    [
        ("{}", "exactly one of tcp, heartbeat, command (got none)"),
        ("{tcp: 1, heartbeat: bus}", "exactly one of tcp, heartbeat, command (got tcp, heartbeat)"),
    ],
)
def test_health_needs_exactly_one_check(settings, health: str, expected: str) -> None:
    message = config_error(f"jobs:\n  a: {{command: a, health: {health}}}\n", settings)
    assert "jobs.a.health" in message and expected in message


def test_bad_cron_expression_names_job(settings) -> None:
    message = config_error(
        "jobs:\n  nightly: {command: a, schedule: {run: '61 * * * *'}}\n", settings
    )
    assert "jobs.nightly.schedule" in message and "invalid cron expression '61 * * * *'" in message


def test_schedule_needs_run_or_a_window(settings) -> None:
    message = config_error("jobs:\n  a: {command: a, schedule: {start: '0 9 * * *'}}\n", settings)
    assert "jobs.a.schedule" in message and "give run, or both start and stop" in message


def test_one_shot_cannot_restart_always(settings) -> None:
    message = config_error(
        "jobs:\n  a: {command: a, restart: always, schedule: {run: '0 2 * * *'}}\n", settings
    )
    assert "jobs.a" in message and "cannot restart always" in message


def test_nothing_depends_on_a_one_shot(settings) -> None:
    message = config_error(
        """
        jobs:
          nightly: {command: a, schedule: {run: '0 2 * * *'}}
          b: {command: b, depends_on: [nightly]}
        """,
        settings,
    )
    assert "jobs.b.depends_on: 'nightly' is a one-shot" in message


def test_secret_on_a_command_line_is_refused_but_allowed_in_env(settings) -> None:
    message = config_error(
        "jobs:\n  r: {command: redis-server, args: ['--requirepass', '${redis.password}']}\n",
        settings,
    )
    assert "jobs.r.args[1]" in message and "secret" in message
    config = jobs_from(
        "jobs:\n  r: {command: redis-server, env: {REDIS_PASSWORD: '${redis.password}'}}\n",
        settings,
    )
    assert config.jobs["r"].env["REDIS_PASSWORD"] == "s3cret"


def test_bad_job_name(settings) -> None:
    assert "a job name is letters" in config_error("jobs:\n  'a b': {command: a}\n", settings)


# -- resolution ------------------------------------------------------------------------


def test_expansion_split_and_defaults(settings, tmp_path: Path) -> None:
    config = jobs_from(
        """
        jobs:
          redis:
            command: redis-server
            args: ["--port", "${redis.port}", "--dir", "${redis.data_dir}", "--save", "", 42]
            makedirs: ["${redis.data_dir}"]
            health: {tcp: "${redis.port}"}
          bus:
            command: ${python} -m services.bus --name "two words"
            depends_on: [redis]
            env: {BUS: "${bus.sub_endpoint}", LITERAL: "$${not.expanded}"}
            health: {heartbeat: bus}
            cwd: work
            log: logs/custom.log
          probe:
            command: sleep 1
            health: {command: "test -d ${home}", timeout: 0.5}
            restart: never
        """,
        settings,
    )
    redis, bus, probe = config.jobs["redis"], config.jobs["bus"], config.jobs["probe"]
    data_dir = str(tmp_path / "data" / "redis")
    assert redis.argv == ("redis-server", "--port", "7001", "--dir", data_dir, "--save", "", "42")
    assert redis.health == TcpHealth("127.0.0.1", 7001)
    assert redis.makedirs == (tmp_path / "data" / "redis",)
    assert redis.cwd == tmp_path
    assert redis.log == tmp_path / "logs" / "redis.out"
    assert redis.restart is RestartPolicy.ALWAYS
    assert bus.argv == (sys.executable, "-m", "services.bus", "--name", "two words")
    assert bus.env == {"BUS": "tcp://127.0.0.1:5556", "LITERAL": "${not.expanded}"}
    assert bus.health == HeartbeatHealth("bus")
    assert bus.cwd == tmp_path / "work"
    assert bus.log == tmp_path / "logs" / "custom.log"
    assert probe.health == CommandHealth(("test", "-d", str(tmp_path)))
    assert probe.health_timeout == 0.5
    assert config.graph() == {"redis": (), "bus": ("redis",), "probe": ()}


def test_tcp_health_accepts_host_and_port(settings) -> None:
    config = jobs_from("jobs:\n  a: {command: a, health: {tcp: 'localhost:8080'}}\n", settings)
    assert config.jobs["a"].health == TcpHealth("localhost", 8080)
    assert "expected PORT or HOST:PORT" in config_error(
        "jobs:\n  a: {command: a, health: {tcp: web}}\n", settings
    )


def test_schedules_and_one_shot_restart_default(settings) -> None:
    config = jobs_from(
        """
        jobs:
          nightly: {command: a, schedule: {run: "0 2 * * *", timezone: America/New_York}}
          session: {command: b, schedule: {start: "30 9 * * 1-5", stop: "0 16 * * 1-5"}}
        """,
        settings,
    )
    nightly, session = config.jobs["nightly"], config.jobs["session"]
    assert isinstance(nightly.schedule, RunSchedule) and nightly.oneshot
    assert nightly.restart is RestartPolicy.ON_FAILURE
    assert isinstance(session.schedule, WindowSchedule) and not session.oneshot
    assert session.restart is RestartPolicy.ALWAYS


def test_backoff_delay_grows_to_its_cap(settings) -> None:
    config = jobs_from(
        "jobs:\n  a: {command: a, backoff: {initial: 0.5, factor: 3, max: 4}}\n", settings
    )
    job = config.jobs["a"]
    assert [job.backoff_delay(n) for n in (1, 2, 3, 4)] == [0.5, 1.5, 4.0, 4.0]
    assert job.backoff.reset_after == 10.0  # the default
    assert jobs_from("jobs:\n  a: {command: a, backoff: {reset_after: 2.5}}\n", settings).jobs[
        "a"
    ].backoff.reset_after == 2.5
    with pytest.raises(ConfigError, match="reset_after"):
        jobs_from("jobs:\n  a: {command: a, backoff: {reset_after: 0}}\n", settings)


def test_profile_selects_jobs(tmp_path: Path) -> None:
    text = (
        "jobs:\n  a: {command: a}\n  b: {command: b}\nprofiles:\n  default: [a, b]\n  small: [b]\n"
    )
    assert list(jobs_from(text, make_settings(tmp_path, profile="small")).jobs) == ["b"]
    assert list(jobs_from(text, make_settings(tmp_path)).jobs) == ["a", "b"]


def test_repository_jobs_file_loads_for_every_profile(tmp_path: Path) -> None:
    env = {"TRADER_HOME": str(tmp_path), "TRADER_CONFIG": str(REPO / "configs" / "trader.yaml")}
    live = load_jobs(load_settings("live", env=env), REPO / "configs" / "pycron.yaml")
    assert list(live.jobs) == ["redis", "bus", "trader_service", "strategy_service", "strategy_drift"]  # no simulator
    assert load_settings("live", env=env).strategies.only == []  # no strategy trades live until named
    aof = live.jobs["redis"].argv.index("--appendonly")
    assert live.jobs["redis"].argv[aof + 1] == "yes"  # a real account persists: so does its journal
    for profile in ("default", "test"):
        settings = load_settings(profile, env=env)
        config = load_jobs(settings, REPO / "configs" / "pycron.yaml")
        nightly = ["history_nightly", "strategy_drift"] if profile == "default" else []  # daily jobs: not in test
        recorder = ["tick_recorder"] if profile == "default" else []  # the test stacks record nothing
        assert list(config.jobs) == ["redis", "bus", "tws", "trader_service", "strategy_service", "history_service",
                                     *nightly, *recorder]
        assert config.jobs["history_service"].health == HeartbeatHealth("history_service")
        assert config.jobs["history_service"].depends_on == ("redis", "bus")
        if recorder:
            assert config.jobs["tick_recorder"].health == HeartbeatHealth("tick_recorder")
            assert config.jobs["tick_recorder"].depends_on == ("bus",)
        assert config.jobs["trader_service"].health == HeartbeatHealth("trader_service")
        assert config.jobs["strategy_service"].depends_on == ("redis", "bus", "trader_service")
        redis_argv = config.jobs["redis"].argv
        assert redis_argv[redis_argv.index("--appendonly") + 1] == "no"  # the simulator's world starts afresh
        assert config.jobs["bus"].health == HeartbeatHealth("bus")
        assert config.jobs["redis"].health == TcpHealth("127.0.0.1", settings.redis.port)
        tws = config.jobs["tws"]
        assert tws.argv[1:] == ("-m", "services.tws_sim", "--port", str(settings.ib.port))
        assert tws.health == TcpHealth("127.0.0.1", settings.ib.port) and tws.depends_on == ("bus",)
        assert tws.restart is RestartPolicy.ALWAYS
    nightly = load_jobs(load_settings("default", env=env), REPO / "configs" / "pycron.yaml").jobs["history_nightly"]
    assert nightly.argv[1:] == ("-m", "trader.cli", "history", "update", "--all")
    assert nightly.oneshot and nightly.schedule.run == "30 22 * * 1-5"  # type: ignore[union-attr]
    assert nightly.depends_on == ("history_service",) and nightly.restart is RestartPolicy.ON_FAILURE
    drift = load_jobs(load_settings("default", env=env), REPO / "configs" / "pycron.yaml").jobs["strategy_drift"]
    assert drift.argv[1:] == ("-m", "trader.cli", "strategy", "drift", "--all", "--record")
    assert drift.oneshot and drift.schedule.run == "0 23 * * 1-5"  # type: ignore[union-attr]  # after the nightly
    assert drift.depends_on == ("trader_service", "strategy_service") and drift.restart is RestartPolicy.ON_FAILURE


# -- graph -------------------------------------------------------------------------------


def test_levels_start_dependencies_first_and_stop_them_last() -> None:
    graph = {"app": ["bus", "redis"], "bus": [], "redis": [], "ui": ["app"]}
    assert start_levels(graph) == [["bus", "redis"], ["app"], ["ui"]]
    assert stop_levels(graph) == [["ui"], ["app"], ["bus", "redis"]]
    with pytest.raises(ConfigError, match="dependency cycle: x -> y -> z -> x"):
        check_acyclic({"x": ["y"], "y": ["z"], "z": ["x"]}, "f.yaml")
