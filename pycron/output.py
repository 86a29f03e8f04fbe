"""A job's captured output: read from the child's pipe, written to size-bounded rotating files.

pycron hands each child the write end of a pipe for its stdout and stderr
(rather than the log file itself) and writes what arrives to
``<logs_dir>/<job>.out`` through :class:`RotatingOutput`: once the file
would pass ``max_bytes`` it becomes ``<job>.out.1`` (the older ones shift
up, ``<job>.out.<backups>`` is dropped) and a fresh file starts. So a child
that writes without end fills at most ``(backups + 1) * max_bytes`` of disk.

Nothing is lost while pycron runs: the pipe is read on pycron's loop as data
comes, into a pipe buffer enlarged to ``PIPE_SIZE`` where the kernel allows,
so a child blocks only if pycron's loop stalls for as long as it takes to
fill that buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.logsetup import BACKUPS, MAX_BYTES

log = logging.getLogger(__name__)

PIPE_SIZE = 1024 * 1024  # the default /proc/sys/fs/pipe-max-size: an unprivileged process may ask this much
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # Linux; Python 3.10+ names it


@dataclass(frozen=True, slots=True)
class Rotation:
    """How big a job's output file may grow (``max_bytes``) and how many rotated files are kept."""

    max_bytes: int = MAX_BYTES
    backups: int = BACKUPS


DEFAULT_ROTATION = Rotation()


class RotatingOutput:
    """Append bytes to ``path``, rotating it by size; ``write`` never raises (errors are logged once)."""

    def __init__(self, path: Path, rotation: Rotation = DEFAULT_ROTATION) -> None:
        self.path = path
        self.rotation = rotation
        self.written = 0  # bytes taken, over every file
        self._file: int | None = None
        self._size = 0
        self._failed = False
        self._ends_line = True

    @property
    def ends_line(self) -> bool:
        """Whether what was written last ended with a newline (or nothing was written)."""
        return self._ends_line

    def _open(self) -> int:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self._size = os.fstat(self._file).st_size
        return self._file

    def write(self, data: bytes) -> None:
        """Append ``data``, rotating first whenever the file would pass ``max_bytes``."""
        if data:
            self._ends_line = data.endswith(b"\n")
        try:
            view = memoryview(data)
            while view:
                fd = self._open()
                room = self.rotation.max_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                n = os.write(fd, view[:room])
                self._size += n
                self.written += n
                view = view[n:]
        except OSError as exc:
            if not self._failed:
                self._failed = True
                log.error("cannot write %s: %s (output dropped until it works again)", self.path, exc)
            self.close()
        else:
            self._failed = False

    def _rotate(self) -> None:
        self.close()
        backups = self.rotation.backups
        for n in range(backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{n + 1}"))
        if backups > 0:
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))
        else:
            self.path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close the file; a later write opens it again. Safe to call twice."""
        fd, self._file = self._file, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


class _PipeReader(asyncio.Protocol):
    def __init__(self, output: RotatingOutput) -> None:
        self.output = output
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.output.write(data)

    def eof_received(self) -> bool | None:
        return None  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            self.done.set_result(None)


class OutputCapture:
    """One child's output pipe and the reader that writes it to a :class:`RotatingOutput`.

    ``child_fd`` is what the child gets as stdout and stderr; call
    ``spawned()`` once it has it (pycron's copy is closed, so the reader sees
    EOF when the last process holding it ends), then ``begin()``.
    """

    def __init__(self, output: RotatingOutput) -> None:
        self.output = output
        self._read_fd, self.child_fd = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.child_fd, _F_SETPIPE_SZ, PIPE_SIZE)
        self._transport: asyncio.BaseTransport | None = None
        self._reader: _PipeReader | None = None
        self._starting: asyncio.Task[None] | None = None
        self._pipe: Any = None  # the read end as a file object, once the reader took it

    def spawned(self) -> None:
        """Close pycron's copy of the child's end (the child holds its own); safe to call twice."""
        fd, self.child_fd = self.child_fd, -1
        if fd >= 0:
            with contextlib.suppress(OSError):
                os.close(fd)

    def begin(self) -> None:
        """Start reading the pipe on the running loop (a task: the caller has no await to be cancelled at)."""
        self._starting = asyncio.get_running_loop().create_task(self._start(), name="pycron-output")

    async def _start(self) -> None:
        loop = asyncio.get_running_loop()
        self._pipe, self._read_fd = os.fdopen(self._read_fd, "rb", buffering=0), -1
        self._transport, self._reader = await loop.connect_read_pipe(lambda: _PipeReader(self.output), self._pipe)

    async def finish(self, timeout: float) -> None:
        """Wait up to ``timeout`` s for the pipe's EOF (what is still in it gets written), then close."""
        if self._starting is not None:
            await asyncio.gather(self._starting, return_exceptions=True)
        if self._reader is not None:
            await asyncio.wait({self._reader.done}, timeout=timeout)
        if self._transport is not None:
            self._transport.close()
        else:
            self.spawned()
            with contextlib.suppress(OSError):
                if self._pipe is not None:
                    self._pipe.close()  # it owns the read end now
                elif self._read_fd >= 0:
                    os.close(self._read_fd)
                    self._read_fd = -1
        self.output.close()
