"""A job's logging under pycron: its own log file has every line, the pipe to pycron only errors and crashes.

Every line a service logged also went to its stderr, a pipe pycron drains:
a stalled pycron blocked the service inside a log call once the pipe was
full, and a dead one made every later line a BrokenPipeError in the service.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from pycron_helpers import jobs_from, run, running, wait_until

from pycron.job import JobState
from trader.config import Settings
from trader.logsetup import SUPERVISED_ENV

CHILD = Path(__file__).with_name("logging_child.py")
REPO = Path(__file__).resolve().parents[2]


def job_files(settings: Settings, mode: str) -> tuple[str, str]:
    """Run the logging child once as a pycron job; return its ``.out`` (the pipe) and its ``.log``."""
    logs = settings.path(settings.storage.logs_dir)
    config = jobs_from(
        f"""
        jobs:
          logchild:
            command: {sys.executable} {CHILD} {logs} {mode}
            env: {{PYTHONPATH: "{REPO}"}}
            restart: never
            settle_time: 0.1
        """,
        settings,
    )

    async def scenario() -> None:
        async with running(config, settings) as supervisor:
            job = supervisor.jobs["logchild"]
            await wait_until(lambda: job.last_exit is not None and job.state in (JobState.STOPPED, JobState.FAILED, JobState.COMPLETED),
                             timeout=20, what="the child's exit")

    run(scenario())
    return (logs / "logchild.out").read_text(), (logs / "logchild.log").read_text()


def test_a_job_logs_every_line_to_its_file_and_only_errors_to_the_pipe(pycron_settings: Settings) -> None:
    out, own_log = job_files(pycron_settings, "exit")
    assert "an info line" in own_log and "a warning line" in own_log and "an error line" in own_log
    assert "printed before logging" in out and "an error line" in out  # what `trader up` shows on failure
    assert "an info line" not in out and "a warning line" not in out


def test_a_crash_traceback_still_reaches_the_pipe(pycron_settings: Settings) -> None:
    out, own_log = job_files(pycron_settings, "crash")
    assert "RuntimeError: boom at exit" in out and "RuntimeError: boom at exit" in own_log


def test_a_job_whose_reader_died_survives_its_stray_prints(tmp_path: Path) -> None:
    # pycron's death, as the job sees it: the read end of its stdout/stderr pipe is closed.
    read_end, write_end = os.pipe()
    go, marker = tmp_path / "go", tmp_path / "survived"
    env = {**os.environ, SUPERVISED_ENV: "logchild", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path / "logs"), "orphan", str(go), str(marker)],
        stdout=write_end, stderr=write_end, env=env,
    )
    os.close(write_end)
    try:
        seen = b""
        deadline = time.monotonic() + 20
        while b"ready" not in seen:
            assert time.monotonic() < deadline, seen
            chunk = os.read(read_end, 4096)
            assert chunk, seen
            seen += chunk
    finally:
        os.close(read_end)
    go.touch()
    assert proc.wait(20) == 0
    assert marker.read_text() == "survived"
    assert "an error line 199" in (tmp_path / "logs" / "logchild.log").read_text()
