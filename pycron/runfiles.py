"""pycron's run files under ``<run_dir>``: the pid file, the control token and the Redis password (mode 0600)."""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from trader.config import Settings
from trader.errors import ConfigError

PID_FILE = "pycron.pid"
TOKEN_FILE = "pycron.token"
TOKEN_ENV = "TRADER_PYCRON__TOKEN"
REDIS_PASSWORD_FILE = "redis.password"
REDIS_PASSWORD_ENV = "TRADER_REDIS__PASSWORD"


def run_dir(settings: Settings) -> Path:
    """Return the run directory (absolute)."""
    return settings.path(settings.storage.run_dir)


def pid_path(settings: Settings) -> Path:
    """Return where pycron writes its pid."""
    return run_dir(settings) / PID_FILE


def token_path(settings: Settings) -> Path:
    """Return where ``trader up`` keeps a generated control token."""
    return run_dir(settings) / TOKEN_FILE


# -- pid -----------------------------------------------------------------------------


def pid_alive(pid: int) -> bool:
    """Return whether ``pid`` is a live process (a zombie counts as dead, and is reaped if ours)."""
    with contextlib.suppress(ChildProcessError, OSError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    # The state follows the parenthesised command name, which may itself contain spaces.
    return stat_line.rpartition(")")[2].split()[:1] != ["Z"]


def _looks_like_pycron(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True  # no /proc: trust the pid file
    return b"pycron" in cmdline


def read_pid(settings: Settings) -> int | None:
    """Return the pid in the pid file, or None if there is none or it is unreadable."""
    try:
        return int(pid_path(settings).read_text().strip())
    except (OSError, ValueError):
        return None


def running_pid(settings: Settings) -> int | None:
    """Return the pid of the pycron running for this home, or None (a stale pid file is ignored)."""
    pid = read_pid(settings)
    if pid is None or not pid_alive(pid) or not _looks_like_pycron(pid):
        return None
    return pid


def write_pid(settings: Settings, pid: int | None = None) -> Path:
    """Write ``pid`` (default: ours) into the pid file and return its path."""
    path = pid_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(f"{os.getpid() if pid is None else pid}\n")
    tmp.replace(path)
    return path


def remove_pid(settings: Settings, pid: int | None = None) -> None:
    """Remove the pid file if it still names ``pid`` (default: ours)."""
    if read_pid(settings) == (os.getpid() if pid is None else pid):
        with contextlib.suppress(FileNotFoundError):
            pid_path(settings).unlink()


# -- token ---------------------------------------------------------------------------


def read_secret_file(path: Path, what: str) -> str | None:
    """Return the secret kept in ``path`` (None if there is none); ConfigError if others may read it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the {what} file must be private (chmod 600 {path})")
    secret = path.read_text().strip()
    return secret or None


def ensure_secret_file(path: Path, what: str) -> str:
    """Return the secret in ``path``, generating one into it (mode 0600) if there is none."""
    existing = read_secret_file(path, what)
    if existing:
        return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        # Another `trader up` won the race (or left an empty file): use what is there.
        existing = read_secret_file(path, what)
        if existing:
            return existing
        raise ConfigError(f"{path}: the {what} file is empty; remove it and try again") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
    return secret


def read_token(settings: Settings) -> str | None:
    """Return the control token: from the settings (TRADER_PYCRON__TOKEN), else the token file."""
    if settings.pycron.token is not None and settings.pycron.token.get_secret_value():
        return settings.pycron.token.get_secret_value()
    return read_secret_file(token_path(settings), "token")


def ensure_token(settings: Settings) -> str:
    """Return the control token, generating one into the token file (mode 0600) if there is none."""
    return read_token(settings) or ensure_secret_file(token_path(settings), "token")


def ensure_redis_password(settings: Settings) -> str:
    """Return Redis's password: the settings' (TRADER_REDIS__PASSWORD), else ``<run_dir>/redis.password``,
    generated (mode 0600) if there is none."""
    if settings.redis.password is not None and settings.redis.password.get_secret_value():
        return settings.redis.password.get_secret_value()
    return ensure_secret_file(run_dir(settings) / REDIS_PASSWORD_FILE, "Redis password")
