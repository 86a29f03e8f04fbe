"""The redis job: ``redis-server`` with the platform's password, which never appears on a command line.

``python -m services.redis_server [redis-server options]`` loads the
settings; if ``redis.password`` is set (``TRADER_REDIS__PASSWORD``, which
``trader up`` generates into ``run/redis.password`` when it is not), it
hands ``requirepass`` to redis-server as configuration on its standard input
(``redis-server ... -``), through a pipe written before the exec, so the
password is in no file and in no ``ps`` line, and drops the variable from
redis-server's environment. Then it becomes redis-server (``exec``: same pid,
so pycron supervises and stops redis-server itself). Without a password it
runs redis-server as given.
"""

from __future__ import annotations

import os
import shutil
import sys

from pycron.runfiles import REDIS_PASSWORD_ENV
from trader.config import load_settings
from trader.errors import ConfigError, TraderError

_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.~")


def config_line(password: str) -> bytes:
    """Return the ``requirepass`` line of a redis config, the password quoted (\\xHH for all but plain chars)."""
    if not password:
        raise ConfigError("redis.password is empty")
    quoted = "".join(c if c in _PLAIN else "".join(f"\\x{b:02x}" for b in c.encode()) for c in password)
    return f'requirepass "{quoted}"\n'.encode()


def exec_redis(argv: list[str], password: str | None, env: dict[str, str]) -> None:
    """Replace this process with redis-server ``argv``; with ``password``, its config comes on stdin."""
    program = shutil.which("redis-server", path=env.get("PATH"))
    if program is None:
        raise ConfigError("redis-server not found on PATH")
    env = {k: v for k, v in env.items() if k != REDIS_PASSWORD_ENV}
    args = [program, *argv]
    if password:
        line = config_line(password)
        read, write = os.pipe()
        os.write(write, line)  # far below a pipe's capacity: never blocks
        os.close(write)
        os.dup2(read, 0)
        os.close(read)
        args.append("-")
    os.execve(program, args, env)


def main(argv: list[str] | None = None) -> int:
    """Exec redis-server with the settings' password; return an exit code only if that fails."""
    try:
        settings = load_settings()
        secret = settings.redis.password
        exec_redis(list(sys.argv[1:] if argv is None else argv),
                   secret.get_secret_value() if secret is not None else None, dict(os.environ))
    except (TraderError, OSError) as exc:
        print(f"redis_server: error: {exc}", file=sys.stderr, flush=True)
        return getattr(exc, "exit_code", 1)
    return 1  # not reached: exec replaced the process


if __name__ == "__main__":
    sys.exit(main())
