"""The repo type-checks: mypy over pyproject's ``files`` (its config, pydantic plugin) reports no error.

mypy runs in a child process with its cache in the test's tmp dir, so the
answer never depends on a stale ``.mypy_cache`` (a cold check takes ~35 s
of CPU). A failure lists every error, as ``path:line: error: ...``.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ERROR = re.compile(r"^\S+\.py:\d+: error: ", re.MULTILINE)
CHECKED = re.compile(r"(?:\(checked|no issues found in) (\d+) source files?")  # with errors, or none


def run_mypy(cache: Path, *args: str) -> tuple[int, str]:
    """Return mypy's exit code and output for ``args`` (none: pyproject's ``files``), run from the repo root."""
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--cache-dir", str(cache), "--no-color-output", "--no-pretty", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )
    return done.returncode, done.stdout + done.stderr


def errors_of(output: str) -> list[str]:
    """Return the error lines of mypy's ``output`` (its notes left out)."""
    return [line for line in output.splitlines() if ERROR.match(line)]


@pytest.mark.timeout(900)  # a cold check of ~260 files: 35 s of CPU, minutes of wall time on a loaded machine
def test_the_repo_type_checks(tmp_path: Path) -> None:
    code, output = run_mypy(tmp_path / "mypy_cache")
    errors = errors_of(output)
    assert not errors, f"mypy reports {len(errors)} error(s):\n" + "\n".join(errors)
    assert code == 0, output  # no error line, yet a failure: a crash or a config error
    checked = CHECKED.search(output)
    assert checked is not None and int(checked.group(1)) > 100, output  # pyproject's files, not a handful


@pytest.mark.timeout(300)
def test_an_error_is_reported_with_its_place(tmp_path: Path) -> None:
    """The check above can fail: with the repo's config, a wrong type is an error line naming file and line."""
    bad = tmp_path / "bad_types.py"
    bad.write_text('"""A wrong type."""\n\ncount: int = "three"\n')
    code, output = run_mypy(tmp_path / "mypy_cache", "--config-file", str(ROOT / "pyproject.toml"), str(bad))
    assert code == 1, output
    wrong = 'Incompatible types in assignment (expression has type "str", variable has type "int")'
    assert errors_of(output) == [f"{bad}:3: error: {wrong}  [assignment]"]
